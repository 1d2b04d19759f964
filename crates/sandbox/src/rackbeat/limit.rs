//! Rackbeat's rate limit: a budget of requests per bearer token in a fixed one-minute window,
//! as Laravel's `throttle` middleware keeps it (the window opens at its first request and the
//! count starts again when it has passed). Rackbeat publishes no figure; its own client throttles
//! itself to 480 a minute, which is the default.
//!
//! The clock can be moved forward ([`RateLimit::advance`]) so a test reaches the next window
//! without waiting.
//!
//! Not `governor`, which the client's budget uses: governor meters a smooth rate (GCRA), while
//! the service this stands in for counts a fixed window and answers the request past it with a
//! 429 until the window ends, which is the behaviour clients must be tested against.

use std::collections::HashMap;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

struct Window {
    start: Instant,
    used: u32,
}

/// What the limit says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No limit is set.
    Unlimited,
    Admitted {
        limit: u32,
        remaining: u32,
    },
    /// Over the limit until the window ends, `retry_after` seconds from now (rounded up).
    Refused {
        limit: u32,
        retry_after: u64,
    },
}

pub(crate) struct RateLimit {
    /// Requests per token per window; `0`: unlimited.
    limit: u32,
    windows: HashMap<String, Window>,
    /// How far the clock has been moved forward.
    skew: Duration,
}

impl RateLimit {
    pub fn new(limit: u32) -> RateLimit {
        RateLimit {
            limit,
            windows: HashMap::new(),
            skew: Duration::ZERO,
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// A new limit, with every token's window starting afresh.
    pub fn set(&mut self, limit: u32) {
        self.limit = limit;
        self.windows.clear();
    }

    pub fn advance(&mut self, by: Duration) {
        self.skew += by;
    }

    fn now(&self) -> Instant {
        Instant::now() + self.skew
    }

    /// Counts one request of `token` and says whether it is admitted. A refused request counts
    /// too, as Laravel's limiter counts every attempt (it does not lengthen the window).
    pub fn take(&mut self, token: &str) -> Verdict {
        if self.limit == 0 {
            return Verdict::Unlimited;
        }
        let now = self.now();
        let w = self.windows.entry(token.to_string()).or_insert(Window {
            start: now,
            used: 0,
        });
        if now.duration_since(w.start) >= WINDOW {
            *w = Window {
                start: now,
                used: 0,
            };
        }
        w.used = w.used.saturating_add(1);
        if w.used <= self.limit {
            return Verdict::Admitted {
                limit: self.limit,
                remaining: self.limit - w.used,
            };
        }
        let left = WINDOW.saturating_sub(now.duration_since(w.start));
        Verdict::Refused {
            limit: self.limit,
            retry_after: (left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_token_has_its_own_window_and_the_next_window_admits_again() {
        let mut r = RateLimit::new(2);
        assert_eq!(
            r.take("a"),
            Verdict::Admitted {
                limit: 2,
                remaining: 1
            }
        );
        assert!(matches!(
            r.take("a"),
            Verdict::Admitted { remaining: 0, .. }
        ));
        assert!(matches!(
            r.take("a"),
            Verdict::Refused {
                retry_after: 60,
                ..
            }
        ));
        assert!(matches!(
            r.take("b"),
            Verdict::Admitted { remaining: 1, .. }
        ));
        r.advance(Duration::from_secs(60));
        assert!(matches!(
            r.take("a"),
            Verdict::Admitted { remaining: 1, .. }
        ));
        assert_eq!(RateLimit::new(0).take("a"), Verdict::Unlimited);
    }
}
