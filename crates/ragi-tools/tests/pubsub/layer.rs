//! The in-memory layer's rules, through its public API.

use std::sync::Arc;

use ragi::{Connection, DisconnectReason};
use ragi_tools::channels::{
    self, ChannelErrorKind, ChannelLayer, Delivery, Ended, GapReason, Incoming, Layer, MemoryLayer,
    Message, Overflow, SubscribeOptions,
};

use super::support::within;

fn memory() -> (MemoryLayer, Layer) {
    let m = MemoryLayer::new();
    (m.clone(), Arc::new(m))
}

/// A group send reaches every member, each getting the same shared message (one
/// reference-count increment each: no copy, no allocation per member).
#[tokio::test]
async fn a_group_send_fans_out_to_every_member_sharing_one_message() {
    let (_m, layer) = memory();
    let mut subs = Vec::new();
    for _ in 0..1000 {
        subs.push(
            layer
                .subscribe(SubscribeOptions::new().group("fan"))
                .await
                .unwrap(),
        );
    }
    let sent = Message::text("x".repeat(4096));
    layer.group_send("fan", sent.clone()).await.unwrap();
    for sub in &mut subs {
        match sub.try_recv() {
            Some(Delivery::Message(m)) => assert!(m.ptr_eq(&sent), "a copy was made"),
            other => panic!("{other:?}"),
        }
        assert!(sub.try_recv().is_none());
    }
}

/// A subscriber that never reads: every send completes at once, the others get everything,
/// its queue stays at its bound, and it learns how many it lost.
#[tokio::test]
async fn a_slow_subscriber_is_bounded_and_delays_nobody() {
    let (m, layer) = memory();
    let mut slow = layer
        .subscribe(SubscribeOptions::new().capacity(8).group("g"))
        .await
        .unwrap();
    let mut fast = layer
        .subscribe(SubscribeOptions::new().capacity(8).group("g"))
        .await
        .unwrap();
    for n in 0..10_000u32 {
        // Never pending: a send does not wait for any subscriber.
        let send = layer.group_send("g", Message::text(n.to_string()));
        let r = futures_util::FutureExt::now_or_never(send).expect("a send waited");
        r.unwrap();
        match fast.try_recv() {
            Some(Delivery::Message(got)) => assert_eq!(got.as_str(), Some(&*n.to_string())),
            other => panic!("{other:?}"),
        }
        assert!(slow.len() <= 8);
    }
    assert_eq!(slow.len(), 8);
    assert_eq!(slow.dropped(), 10_000 - 8);
    match slow.try_recv() {
        Some(Delivery::Gap(g)) => {
            assert_eq!(g.reason(), &GapReason::Overflow);
            assert_eq!(g.missed(), Some(10_000 - 8));
        }
        other => panic!("{other:?}"),
    }
    for n in 10_000 - 8..10_000u32 {
        match slow.try_recv() {
            Some(Delivery::Message(got)) => assert_eq!(got.as_str(), Some(&*n.to_string())),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(m.hub().group_len("g"), 2);
}

/// Under `Overflow::Close` the slow subscriber ends, its queue is freed and it leaves its
/// groups; the others go on.
#[tokio::test]
async fn the_close_policy_ends_only_the_slow_subscriber() {
    let (m, layer) = memory();
    let mut slow = layer
        .subscribe(
            SubscribeOptions::new()
                .capacity(4)
                .overflow(Overflow::Close)
                .group("g"),
        )
        .await
        .unwrap();
    let mut fast = layer
        .subscribe(SubscribeOptions::new().capacity(4).group("g"))
        .await
        .unwrap();
    for n in 0..10 {
        layer
            .group_send("g", Message::text(n.to_string()))
            .await
            .unwrap();
        assert!(matches!(fast.try_recv(), Some(Delivery::Message(_))));
    }
    assert_eq!(slow.ended(), Some(Ended::SlowConsumer));
    assert_eq!(within("closed()", slow.closed()).await, Ended::SlowConsumer);
    assert_eq!(slow.len(), 0);
    assert_eq!(within("the end", slow.recv()).await, None);
    assert_eq!(m.hub().group_len("g"), 1);
    assert_eq!(
        Ended::SlowConsumer.disconnect_reason(),
        DisconnectReason::QueueOverflow
    );
}

/// Dropping a subscription, or its client leaving, removes it at once.
#[tokio::test]
async fn subscriptions_leave_on_drop_and_when_their_client_leaves() {
    let (m, layer) = memory();
    let a = layer
        .subscribe(SubscribeOptions::new().group("g").group("h"))
        .await
        .unwrap();
    let (conn, control) = Connection::pair();
    let mut b = layer
        .subscribe(SubscribeOptions::new().group("g").bind(&conn))
        .await
        .unwrap();
    assert_eq!(m.hub().group_len("g"), 2);
    drop(a);
    assert_eq!((m.hub().group_len("g"), m.hub().group_len("h")), (1, 0));
    control.disconnect(DisconnectReason::WriteTimeout);
    // Synchronously, from the connection object: nothing waited for the subscriber.
    assert_eq!(m.hub().group_len("g"), 0);
    assert_eq!(m.hub().subscriptions(), 0);
    assert_eq!(
        b.ended(),
        Some(Ended::ClientLeft(DisconnectReason::WriteTimeout))
    );
    assert_eq!(b.recv().await, None);
    // A subscription bound to a client already gone ends at once.
    let mut late = layer
        .subscribe(SubscribeOptions::new().group("g").bind(&conn))
        .await
        .unwrap();
    assert_eq!(late.recv().await, None);
    assert_eq!(m.hub().group_len("g"), 0);
}

/// Direct sends, group add/discard, names, resume without history, close.
#[tokio::test]
async fn send_add_discard_names_resume_and_close() {
    let (m, layer) = memory();
    let mut a = layer.subscribe(SubscribeOptions::new()).await.unwrap();
    assert!(a.name().starts_with(layer.process_prefix()));
    assert_eq!(channels::process_of(a.name()), Some(layer.process_prefix()));
    layer.send(a.name(), Message::text("direct")).await.unwrap();
    assert_eq!(
        a.try_recv(),
        Some(Delivery::Message(Message::text("direct")))
    );
    // Unknown channels: dropped (at-most-once), not an error.
    layer
        .send("specific.nobody!1", Message::text("lost"))
        .await
        .unwrap();
    layer.group_add("g", a.name()).await.unwrap();
    layer.group_send("g", Message::text("g1")).await.unwrap();
    layer.group_discard("g", a.name()).await.unwrap();
    layer.group_send("g", Message::text("g2")).await.unwrap();
    assert_eq!(a.try_recv(), Some(Delivery::Message(Message::text("g1"))));
    assert!(a.try_recv().is_none());
    assert_eq!(m.hub().group_len("g"), 0);

    let e = layer
        .group_add("g", "specific.elsewhere!3")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ChannelErrorKind::UnknownChannel);
    let e = layer
        .group_send("not a name", Message::text("x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ChannelErrorKind::InvalidName);
    let e = layer
        .subscribe(SubscribeOptions::new().group("bad/name"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ChannelErrorKind::InvalidName);
    assert_eq!(
        m.hub().subscriptions(),
        1,
        "a refused subscribe leaves nothing"
    );

    // The in-memory layer keeps no history: a resume starts with a gap.
    let mut r = layer
        .subscribe(SubscribeOptions::new().resume_after("41"))
        .await
        .unwrap();
    match r.try_recv() {
        Some(Delivery::Gap(g)) => assert_eq!(g.reason().as_str(), "no_history"),
        other => panic!("{other:?}"),
    }

    // Closing the layer delivers what is queued, then ends.
    layer.send(a.name(), Message::text("last")).await.unwrap();
    layer.close();
    assert_eq!(
        a.recv().await,
        Some(Delivery::Message(Message::text("last")))
    );
    assert_eq!(a.recv().await, None);
    assert_eq!(a.ended(), Some(Ended::LayerClosed));
}

/// `select` gives the client's item first when both are ready, and hands over the
/// subscription's deliveries and end.
#[tokio::test]
async fn select_prefers_the_client_and_loses_nothing() {
    let (_m, layer) = memory();
    let (conn, control) = Connection::pair();
    let mut sub = layer
        .subscribe(SubscribeOptions::new().group("g").bind(&conn))
        .await
        .unwrap();
    layer.group_send("g", Message::text("m")).await.unwrap();
    match channels::select(std::future::ready(7), &mut sub).await {
        Incoming::Client(7) => {}
        other => panic!("{other:?}"),
    }
    // The delivery was not lost by the branch that lost.
    match channels::select(std::future::pending::<()>(), &mut sub).await {
        Incoming::Message(m) => assert_eq!(m.as_str(), Some("m")),
        other => panic!("{other:?}"),
    }
    let waiter = conn.clone();
    control.disconnect(DisconnectReason::ClientClosed);
    match channels::select(std::future::pending::<()>(), &mut sub).await {
        Incoming::Ended(Ended::ClientLeft(r)) => assert_eq!(r, DisconnectReason::ClientClosed),
        other => panic!("{other:?}"),
    }
    assert!(!waiter.is_connected());
}
