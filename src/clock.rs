//! Wall-clock time as sluice sees it.
//!
//! Segments are named and sealed by the UTC hour of arrival, and tokens are
//! checked against the current time, so every reading goes through
//! [`Clock`]. A clock can be shifted by a fixed offset: the fault tests use
//! that to cross an hour boundary under load without waiting for one.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds in one segment hour.
pub const HOUR_SECONDS: i64 = 3600;

/// A wall clock, optionally shifted by a fixed number of milliseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    /// Added to the system time on every reading. Zero in production.
    offset_ms: i64,
}

impl Clock {
    pub fn system() -> Clock {
        Clock { offset_ms: 0 }
    }

    pub fn with_offset_ms(offset_ms: i64) -> Clock {
        Clock { offset_ms }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the system clock is after 1970");
        since_epoch.as_millis() as i64 + self.offset_ms
    }

    /// Whole seconds since the Unix epoch.
    pub fn now_unix(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// The UTC hour a moment falls in, as hours since the epoch. Two records
/// belong in the same segment only if their hours are equal.
pub fn hour_of_ms(unix_ms: i64) -> i64 {
    unix_ms.div_euclid(1000 * HOUR_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_boundaries() {
        assert_eq!(hour_of_ms(0), 0);
        assert_eq!(hour_of_ms(3_599_999), 0);
        assert_eq!(hour_of_ms(3_600_000), 1);
        assert_eq!(hour_of_ms(-1), -1);
    }

    #[test]
    fn offset_shifts_readings() {
        let base = Clock::system().now_ms();
        let shifted = Clock::with_offset_ms(3_600_000).now_ms();
        assert!(shifted - base >= 3_600_000);
        assert!(shifted - base < 3_600_000 + 60_000);
    }
}
