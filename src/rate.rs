//! Request rate limits (SPEC §1: 429 "over the tenant's or stream's rate
//! limit"), one per limited tenant and per limited stream, each shared by
//! every worker.
//!
//! Each limit is kept as one number, the *theoretical arrival time* of the
//! generic cell rate algorithm (GCRA, the leaky-bucket form used by ATM
//! networks and many API gateways): every accepted request pushes it one
//! interval (1 s / rate) further, and a request is refused when it comes
//! so early that the pushed time would run more than one second ahead of
//! now. So a limit of N per second lets a burst of N through after a quiet
//! second and N per second after that, for the appliance as a whole
//! however the connections spread over workers. One compare-and-swap per
//! limit per request, no lock; requests without a limit touch nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The burst a limit allows after a quiet period: one second's worth.
const BURST_NANOS: u64 = 1_000_000_000;

/// One limit's state: the theoretical arrival time, in nanoseconds since
/// the registry's epoch.
#[derive(Debug, Default)]
pub struct Limit(AtomicU64);

impl Limit {
    /// Takes one request at `now` under `rate` per second; false (and
    /// nothing taken) when it is over the limit.
    pub fn take(&self, now: u64, rate: u32) -> bool {
        let interval = interval_nanos(rate);
        let mut tat = self.0.load(Ordering::Acquire);
        loop {
            let next = tat.max(now) + interval;
            if next > now + BURST_NANOS {
                return false;
            }
            match self
                .0
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(current) => tat = current,
            }
        }
    }

    /// Gives back a request taken under `rate` that was refused by another
    /// limit after all.
    pub fn give_back(&self, rate: u32) {
        let interval = interval_nanos(rate);
        let _ = self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
            Some(tat.saturating_sub(interval))
        });
    }
}

fn interval_nanos(rate: u32) -> u64 {
    BURST_NANOS / u64::from(rate.max(1))
}

/// Every limit in use, by tenant and by stream id. Workers keep their own
/// map of the limits they used, so these mutexes are taken once per key
/// per worker, not per request.
pub struct RateLimiters {
    epoch: Instant,
    tenants: Mutex<HashMap<String, Arc<Limit>>>,
    streams: Mutex<HashMap<String, Arc<Limit>>>,
}

impl Default for RateLimiters {
    fn default() -> Self {
        RateLimiters {
            epoch: Instant::now(),
            tenants: Mutex::default(),
            streams: Mutex::default(),
        }
    }
}

impl RateLimiters {
    /// Now, in the limits' time base.
    pub fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub fn tenant(&self, tenant: &str) -> Arc<Limit> {
        shared(&self.tenants, tenant)
    }

    pub fn stream(&self, stream_id: &str) -> Arc<Limit> {
        shared(&self.streams, stream_id)
    }
}

fn shared(map: &Mutex<HashMap<String, Arc<Limit>>>, key: &str) -> Arc<Limit> {
    let mut map = map.lock().expect("the limits map is never poisoned");
    Arc::clone(map.entry(key.to_owned()).or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn a_burst_of_one_second_then_the_rate() {
        let limit = Limit::default();
        let start = 10 * SECOND;
        let burst = (0..8).filter(|_| limit.take(start, 5)).count();
        assert_eq!(burst, 5, "a quiet limit lets one second's worth through");
        // Then one request per interval (200 ms).
        assert!(!limit.take(start + SECOND / 10, 5));
        assert!(limit.take(start + SECOND / 5, 5));
        assert!(!limit.take(start + SECOND / 5, 5));
        // After a quiet second, a full burst again.
        let later = start + 3 * SECOND;
        assert_eq!((0..8).filter(|_| limit.take(later, 5)).count(), 5);
    }

    #[test]
    fn a_request_given_back_is_not_counted() {
        let limit = Limit::default();
        assert!(limit.take(SECOND, 1));
        assert!(!limit.take(SECOND, 1));
        limit.give_back(1);
        assert!(limit.take(SECOND, 1));
    }

    #[test]
    fn workers_share_one_limit() {
        let limits = Arc::new(RateLimiters::default());
        let now = limits.now();
        let accepted: usize = (0..4)
            .map(|_| {
                let limits = Arc::clone(&limits);
                std::thread::spawn(move || {
                    let limit = limits.tenant("acme");
                    (0..100).filter(|_| limit.take(now, 10)).count()
                })
            })
            .map(|thread| thread.join().expect("thread"))
            .sum();
        assert_eq!(accepted, 10, "the limit is the appliance's, not each worker's");
        assert!(Arc::ptr_eq(&limits.tenant("acme"), &limits.tenant("acme")));
        assert!(!Arc::ptr_eq(&limits.tenant("acme"), &limits.stream("acme")));
    }
}
