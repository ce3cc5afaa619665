//! The request rate limit: a token bucket per connection for the requests
//! whose cost grows with the topic count, and the text of its refusal.

use tokio::time::Instant;

/// Expensive requests a connection may send in a burst: `topics`, and
/// subscribe or unsubscribe naming a wildcard pattern (each costs work over
/// every topic). Past it they are answered `rate_limited`.
const EXPENSIVE_BURST: f64 = 20.0;

/// Expensive requests per second a connection earns back, after a burst.
const EXPENSIVE_PER_SEC: f64 = 5.0;

/// A token bucket for one connection's expensive requests.
pub(crate) struct RateLimit {
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket: a new connection may send a whole burst.
    pub(crate) fn new() -> Self {
        RateLimit {
            tokens: EXPENSIVE_BURST,
            last: Instant::now(),
        }
    }

    /// Takes a token if one is left.
    pub(crate) fn allow(&mut self) -> bool {
        let now = Instant::now();
        let earned = now.duration_since(self.last).as_secs_f64() * EXPENSIVE_PER_SEC;
        self.tokens = (self.tokens + earned).min(EXPENSIVE_BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// What a request refused for want of a token is told.
    pub(crate) fn refusal() -> String {
        format!(
            "at most {EXPENSIVE_PER_SEC} `topics` or wildcard requests per second \
             (bursts of {EXPENSIVE_BURST}): send it again later"
        )
    }
}
