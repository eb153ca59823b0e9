//! At most one log line a second for events that come in floods: the rejections of an
//! overload (a full bulkhead, requests shed with 503).
//!
//! Written here rather than taken from a crate: it is one compare-and-swap on the
//! rejection path, and it must count what it leaves out so the next line can say so.
//! The first rejection is logged at once; the rest of that second's are counted, and the
//! next line carries `suppressed`, how many were not logged since the previous one. The
//! metrics (`telltale_bulkhead_rejected_total`, `telltale_server_shed_total`) count
//! every rejection. Without the limit, an overload writes one extra line per rejected
//! request, which fills the log writer's buffer and crowds out the access lines that say
//! what is going on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::{Clock, TokioClock};

/// The shortest time between two logged events of one throttle.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(1);

/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct LogThrottle {
    clock: TokioClock,
    /// Clock reading of the last logged event, in nanoseconds plus one (0: none yet).
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl LogThrottle {
    pub(crate) fn new() -> Self {
        LogThrottle {
            clock: TokioClock::new(),
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when this event is to be logged, `n` being the events left out since the
    /// last one logged; `None` when it is left out (and counted).
    pub(crate) fn admit(&self) -> Option<u64> {
        let now = u64::try_from(self.clock.now().as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1);
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= LOG_EVERY.as_nanos() as u64;
        if due
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_event_a_second_and_the_count_of_the_rest() {
        let t = LogThrottle::new();
        assert_eq!(t.admit(), Some(0), "the first is logged");
        for _ in 0..99 {
            assert_eq!(t.admit(), None);
        }
        tokio::time::advance(LOG_EVERY - Duration::from_millis(1)).await;
        assert_eq!(t.admit(), None, "still within the second");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(t.admit(), Some(100), "99 + 1 left out");
        assert_eq!(t.admit(), None);
        tokio::time::advance(LOG_EVERY * 5).await;
        assert_eq!(t.admit(), Some(1));
    }
}
