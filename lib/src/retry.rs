//! Waiting between attempts, bounded by a deadline: the one backoff under every retry loop
//! (response delivery, `DescribeCluster`, the trust-policy write, API discovery, readiness and
//! deletion), so that each gives up while there is still time to answer.

use std::time::Duration;

use tokio::time::Instant;

/// Waits that double from `first` up to `max`. A wait that would reach the deadline is not
/// started: the caller gets `false` and reports what it was waiting for.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
    deadline: Instant,
}

impl Backoff {
    /// Waits from `first`, doubling up to `max`, never past `deadline`.
    pub fn new(first: Duration, max: Duration, deadline: Instant) -> Self {
        Self {
            next: first,
            max,
            deadline,
        }
    }

    /// Whether the next wait ends before the deadline.
    pub fn has_time(&self) -> bool {
        Instant::now() + self.next < self.deadline
    }

    /// The next wait, for logs.
    pub fn next(&self) -> Duration {
        self.next
    }

    /// Makes the next wait `wait` (a check that wants to look again soon), doubling from there.
    pub fn set_next(&mut self, wait: Duration) {
        self.next = wait;
    }

    /// Sleeps the next wait and doubles it; `false` at once when that would reach the deadline.
    pub async fn wait(&mut self) -> bool {
        if !self.has_time() {
            return false;
        }
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(self.max);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_double_to_the_cap_and_stop_before_the_deadline() {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(300);
        let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(80), deadline);
        let mut waits = Vec::new();
        loop {
            let next = backoff.next();
            if !backoff.wait().await {
                break;
            }
            waits.push(next.as_millis());
        }
        // 20 + 40 + 80 (+ 80 when the machine keeps up) = 140 or 220 ms; the next 80 would end past 300.
        assert!(waits == [20, 40, 80] || waits == [20, 40, 80, 80], "{waits:?}");
        assert!(Instant::now() < deadline, "never sleeps past the deadline");
        assert!(!backoff.has_time());
    }

    #[tokio::test]
    async fn a_set_wait_doubles_from_there() {
        let mut backoff = Backoff::new(
            Duration::from_millis(500),
            Duration::from_secs(5),
            Instant::now() + Duration::from_secs(60),
        );
        backoff.set_next(Duration::from_millis(1));
        assert!(backoff.wait().await);
        assert_eq!(backoff.next(), Duration::from_millis(2));
    }
}
