//! A group send costs no allocation per member: counted with a counting allocator, the
//! allocations of one `group_send` are the same for 10 members and for 10 000.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use futures_util::FutureExt;
use ragi_tools::channels::{ChannelLayer, Delivery, Layer, MemoryLayer, Message, SubscribeOptions};

struct Counting;

thread_local! {
    static COUNT: Cell<Option<u64>> = const { Cell::new(None) };
}

// SAFETY: forwards to the system allocator unchanged; only counts calls on this thread.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = COUNT.try_with(|c| {
            if let Some(n) = c.get() {
                c.set(Some(n + 1));
            }
        });
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    COUNT.with(|c| c.set(Some(0)));
    f();
    COUNT.with(|c| c.replace(None)).unwrap()
}

fn sends_allocate(members: usize) -> u64 {
    let layer: Layer = Arc::new(MemoryLayer::new());
    let mut subs: Vec<_> = (0..members)
        .map(|_| {
            layer
                .subscribe(SubscribeOptions::new().capacity(64).group("g"))
                .now_or_never()
                .unwrap()
                .unwrap()
        })
        .collect();
    let message = Message::text("x".repeat(100));
    // Warm up: every queue grows to hold what it will hold.
    for _ in 0..32 {
        layer
            .group_send("g", message.clone())
            .now_or_never()
            .unwrap()
            .unwrap();
    }
    for s in &mut subs {
        while s.try_recv().is_some() {}
    }
    let n = allocations(|| {
        layer
            .group_send("g", message.clone())
            .now_or_never()
            .unwrap()
            .unwrap();
    });
    for s in &mut subs {
        match s.try_recv() {
            Some(Delivery::Message(m)) => assert!(m.ptr_eq(&message)),
            other => panic!("{other:?}"),
        }
    }
    n
}

#[test]
fn a_group_send_allocates_nothing_per_member() {
    let small = sends_allocate(10);
    let large = sends_allocate(10_000);
    assert_eq!(small, large, "allocations grew with the member count");
    assert!(
        small <= 1,
        "{small} allocations for one send (the boxed future at most)"
    );
}
