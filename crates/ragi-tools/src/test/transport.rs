//! The `transport` extension as the test client advertises it: a buffer you set by hand.

use std::fmt;
use std::sync::{Arc, Mutex};

use ragi::{Transport, TransportState};

type Callback = Arc<dyn Fn() + Send + Sync>;

/// The `transport` extension of one test exchange (`scope.extensions.transport`).
///
/// The test client delivers everything at once, so its outgoing buffer is empty: the buffered
/// amount is 0 unless a test sets it. [`TestTransport::set_buffered`] moves it and fires the
/// app's `on_high_water` / `on_drain` callbacks with the server's hysteresis (high fires when
/// the amount rises above the high watermark; drain fires when it then falls to the low one;
/// neither fires again before the other). `send` never waits on it.
///
/// ```
/// use ragi_tools::test::TestTransport;
///
/// let t = TestTransport::new(); // 64 KiB high / 16 KiB low, like the server
/// assert_eq!(t.buffered(), 0);
/// // client.get("/").transport(t.clone()) hands it to the app; then:
/// t.set_buffered(100 * 1024); // the app's on_high_water callbacks run
/// t.set_buffered(0); // its on_drain callbacks run
/// ```
#[derive(Clone)]
pub struct TestTransport {
    inner: Arc<Inner>,
}

struct Inner {
    high: usize,
    low: usize,
    st: Mutex<St>,
}

#[derive(Default)]
struct St {
    buffered: usize,
    above_high: bool,
    on_high: Vec<Callback>,
    on_drain: Vec<Callback>,
}

impl Default for TestTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl TestTransport {
    /// A transport with the server's default watermarks (64 KiB high, 16 KiB low), empty.
    pub fn new() -> Self {
        Self::with_watermarks(64 * 1024, 16 * 1024)
    }

    /// A transport with these watermarks (`low` is capped at `high`), empty.
    pub fn with_watermarks(high: usize, low: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                high,
                low: low.min(high),
                st: Mutex::new(St::default()),
            }),
        }
    }

    /// The amount the app reads as `buffered_amount()`.
    pub fn buffered(&self) -> usize {
        self.inner.lock().buffered
    }

    /// Sets the buffered amount, firing the app's callbacks as the server would (outside
    /// every lock; a panicking callback does not stop the others).
    pub fn set_buffered(&self, amount: usize) {
        let fire = {
            let mut st = self.inner.lock();
            st.buffered = amount;
            if !st.above_high && amount > self.inner.high {
                st.above_high = true;
                st.on_high.clone()
            } else if st.above_high && amount <= self.inner.low {
                st.above_high = false;
                st.on_drain.clone()
            } else {
                Vec::new()
            }
        };
        for cb in fire {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb()));
        }
    }

    pub(crate) fn extension(&self) -> Transport {
        Transport::new(self.inner.clone())
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, St> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl TransportState for Inner {
    fn buffered_amount(&self) -> usize {
        self.lock().buffered
    }

    fn high_water(&self) -> usize {
        self.high
    }

    fn low_water(&self) -> usize {
        self.low
    }

    fn on_high_water(&self, callback: Box<dyn Fn() + Send + Sync>) {
        self.lock().on_high.push(callback.into());
    }

    fn on_drain(&self, callback: Box<dyn Fn() + Send + Sync>) {
        self.lock().on_drain.push(callback.into());
    }
}

impl fmt::Debug for TestTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestTransport")
            .field("buffered", &self.buffered())
            .field("high", &self.inner.high)
            .field("low", &self.inner.low)
            .finish()
    }
}
