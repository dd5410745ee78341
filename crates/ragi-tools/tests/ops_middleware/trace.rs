//! Trace spans: the fields of the span (method, path, route, status, request id), events
//! inside it, and the disconnect reason recorded the moment the client leaves.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ragi::DisconnectReason;
use ragi_tools::middleware::request_id::SetRequestId;
use ragi_tools::middleware::trace::Trace;
use ragi_tools::prelude::*;
use ragi_tools::test::TestClient;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// What the capturing layer saw.
#[derive(Clone, Default)]
struct Seen {
    spans: Arc<Mutex<BTreeMap<u64, (String, BTreeMap<String, String>)>>>,
    /// (span id, message, fields)
    events: Arc<Mutex<Vec<(Option<u64>, String, BTreeMap<String, String>)>>>,
}

impl Seen {
    fn request_span(&self) -> BTreeMap<String, String> {
        let spans = self.spans.lock().unwrap();
        let found: Vec<_> = spans.values().filter(|(n, _)| n == "request").collect();
        assert_eq!(found.len(), 1, "one request span");
        found[0].1.clone()
    }

    fn event(&self, message: &str) -> Option<(Option<u64>, BTreeMap<String, String>)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .find(|(_, m, _)| m == message)
            .map(|(s, _, f)| (*s, f.clone()))
    }

    fn request_span_id(&self) -> u64 {
        let spans = self.spans.lock().unwrap();
        *spans.iter().find(|(_, (n, _))| n == "request").unwrap().0
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Seen {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        let mut f = BTreeMap::new();
        attrs.record(&mut Fields(&mut f));
        self.spans
            .lock()
            .unwrap()
            .insert(id.into_u64(), (attrs.metadata().name().to_owned(), f));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut spans = self.spans.lock().unwrap();
        if let Some((_, f)) = spans.get_mut(&id.into_u64()) {
            values.record(&mut Fields(f));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut f = BTreeMap::new();
        event.record(&mut Fields(&mut f));
        let message = f.remove("message").unwrap_or_default();
        let span = ctx.event_span(event).map(|s| s.id().into_u64());
        self.events.lock().unwrap().push((span, message, f));
    }
}

fn subscribe() -> (Seen, tracing::subscriber::DefaultGuard) {
    let seen = Seen::default();
    let sub = tracing_subscriber::registry().with(seen.clone());
    (seen, tracing::subscriber::set_default(sub))
}

#[tokio::test]
async fn a_span_with_the_request_route_status_and_id() {
    async fn show(_cx: HttpContext) -> &'static str {
        tracing::info!("inside the handler");
        "shown"
    }
    let (seen, _guard) = subscribe();
    let app = Stack::new()
        .enable(SetRequestId::new().generator(|| "rid-7".into()))
        .enable(Trace::new())
        .run(Router::new().get("/users/{id}", show));
    let res = TestClient::new(app).get("/users/7?full=1").send().await;
    assert_eq!(res.status(), 200);
    let f = seen.request_span();
    assert_eq!(f["kind"], "http");
    assert_eq!(f["method"], "GET");
    assert_eq!(f["path"], "/users/7?full=1");
    assert_eq!(f["route"], "/users/{id}");
    assert_eq!(f["status"], "200");
    assert_eq!(f["request_id"], "rid-7");
    assert!(!f.contains_key("disconnect_reason"), "{f:?}");
    let id = seen.request_span_id();
    let (span, _) = seen.event("inside the handler").expect("the app's event");
    assert_eq!(
        span,
        Some(id),
        "the app's events belong to the request's span"
    );
    let (span, fields) = seen.event("finished").expect("finished");
    assert_eq!(span, Some(id));
    assert_eq!(fields["response_started"], "true");
}

#[tokio::test]
async fn the_reason_is_recorded_the_moment_the_client_leaves() {
    let release = Arc::new(tokio::sync::Notify::new());
    let waiting = {
        let release = release.clone();
        move |_cx: HttpContext| {
            let release = release.clone();
            async move {
                release.notified().await; // ignores the departure
                "late"
            }
        }
    };
    let (seen, _guard) = subscribe();
    let c = TestClient::new(handler(waiting).layer(Trace::new()));
    let req = c.get("/slow");
    let leave = req.disconnect_handle();
    let pending = tokio::spawn(req.send());
    tokio::task::yield_now().await;
    leave.disconnect(DisconnectReason::WriteTimeout);
    // Recorded by the departure, while the handler still waits.
    let f = seen.request_span();
    assert_eq!(f["disconnect_reason"], "write_timeout");
    let (span, fields) = seen.event("client left").expect("the departure's event");
    assert_eq!(span, Some(seen.request_span_id()));
    assert_eq!(fields["reason"], "write_timeout");
    assert!(
        seen.event("finished").is_none(),
        "the handler is still running"
    );
    release.notify_one();
    let res = pending.await.unwrap();
    res.wait_app().await;
    let (_, fields) = seen
        .event("finished")
        .expect("finished once the handler returned");
    assert_eq!(fields["client_left"], "write_timeout");
}
