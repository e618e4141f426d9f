//! The `Date` header field: the moment a response was made, as an
//! IMF-fixdate (RFC 9110 §5.6.7), e.g. `Fri, 27 Nov 2026 15:30:00 GMT`.
//!
//! RFC 9110 §6.6.1 says an origin server with a clock must send `Date` on
//! every 2xx, 3xx, 4xx and 5xx response; [`crate::http::response`] writes
//! it with [`write_date_line`].
//!
//! Promises:
//! - [`imf_fixdate`] writes any second from 1970 to the end of year 9999
//!   as chrono's `%a, %d %b %Y %H:%M:%S GMT` would (the tests compare the
//!   two over many instants); a later second is written as the last second
//!   of 9999, the latest moment the format's four year digits can show.
//! - [`write_date_line`] formats at most once per wall-clock second per
//!   thread: each thread keeps the line of the last second it wrote, so the
//!   202 hot path (over 100k responses a second on one core) pays a clock
//!   read and one copy of [`DATE_LINE_BYTES`] bytes. The formatter is
//!   hand-written (days to a civil date, then digits into a fixed array)
//!   rather than chrono's `format`, which allocates a `String` through the
//!   formatting machinery; chrono stays the tests' reference.
//!
//! The time is the system clock's, not the appliance's [`crate::clock::Clock`]:
//! that one can be shifted by `clock_offset_ms`, a test hook for crossing
//! segment hours, and a client should still be told the real time.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// The length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const IMF_FIXDATE_BYTES: usize = 29;

/// The length of a whole `Date` field line, CRLF included.
pub const DATE_LINE_BYTES: usize = b"Date: ".len() + IMF_FIXDATE_BYTES + b"\r\n".len();

/// The last second an IMF-fixdate can show, 9999-12-31T23:59:59Z.
pub const UNIX_SECOND_MAX: u64 = 253_402_300_799;

const SECONDS_PER_DAY: u64 = 86_400;

/// Day names from the epoch's weekday: 1970-01-01 was a Thursday.
const WEEKDAYS_FROM_EPOCH: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// The `Date` line of one second, as a thread last wrote it.
#[derive(Clone, Copy)]
struct CachedLine {
    /// The second `line` shows, already capped at [`UNIX_SECOND_MAX`];
    /// `u64::MAX` (never a capped second) before the first response.
    unix_second: u64,
    /// `Date: <IMF-fixdate>\r\n`.
    line: [u8; DATE_LINE_BYTES],
    /// How many times this thread formatted a line, for the test that pins
    /// "at most once per second".
    formats: u64,
}

thread_local! {
    /// This thread's last `Date` line. A `Cell` of a small `Copy` value: no
    /// borrow flag, and a const initialiser, so no lazy-init check per use.
    static CACHED_LINE: Cell<CachedLine> = const {
        Cell::new(CachedLine {
            unix_second: u64::MAX,
            line: [0; DATE_LINE_BYTES],
            formats: 0,
        })
    };
}

/// Appends `Date: <now>\r\n`, formatting only when the second changed
/// since this thread last wrote one.
pub fn write_date_line(out: &mut Vec<u8>) {
    write_date_line_at(out, now_unix_second());
}

/// [`write_date_line`] for a given second.
fn write_date_line_at(out: &mut Vec<u8>, unix_second: u64) {
    let unix_second = unix_second.min(UNIX_SECOND_MAX);
    CACHED_LINE.with(|cached| {
        let mut entry = cached.get();
        if entry.unix_second != unix_second {
            entry.unix_second = unix_second;
            entry.line[..6].copy_from_slice(b"Date: ");
            entry.line[6..6 + IMF_FIXDATE_BYTES].copy_from_slice(&imf_fixdate(unix_second));
            entry.line[6 + IMF_FIXDATE_BYTES..].copy_from_slice(b"\r\n");
            entry.formats += 1;
            cached.set(entry);
        }
        out.extend_from_slice(&entry.line);
    });
}

/// Whole seconds since the Unix epoch by the system clock; 0 for a clock
/// set before 1970, which a response must not crash on.
///
/// Read from `CLOCK_REALTIME_COARSE` (the time of the last tick, a few
/// milliseconds old, read without the clock source): a header of whole
/// seconds needs no better, and this runs once per response.
fn now_unix_second() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) } == 0 {
        return u64::try_from(now.tv_sec).unwrap_or(0);
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The IMF-fixdate of a second since the Unix epoch (capped at
/// [`UNIX_SECOND_MAX`]).
pub fn imf_fixdate(unix_second: u64) -> [u8; IMF_FIXDATE_BYTES] {
    let unix_second = unix_second.min(UNIX_SECOND_MAX);
    let days = unix_second / SECONDS_PER_DAY;
    let second_of_day = unix_second % SECONDS_PER_DAY;
    let (year, month, day) = civil_from_days(days);
    let mut date = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    date[0..3].copy_from_slice(WEEKDAYS_FROM_EPOCH[(days % 7) as usize]);
    write_digits(&mut date[5..7], day);
    date[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    write_digits(&mut date[12..16], year);
    write_digits(&mut date[17..19], second_of_day / 3600);
    write_digits(&mut date[20..22], second_of_day / 60 % 60);
    write_digits(&mut date[23..25], second_of_day % 60);
    date
}

/// Writes `value` in decimal into all of `digits`, zero-padded on the left.
fn write_digits(digits: &mut [u8], mut value: u64) {
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
    assert_eq!(value, 0, "invariant: the value fits its digits");
}

/// The proleptic Gregorian (year, month 1–12, day 1–31) of a day counted
/// from 1970-01-01: Howard Hinnant's `civil_from_days`, in unsigned
/// arithmetic because days before the epoch never reach it. It counts in
/// 400-year eras of 146,097 days whose years start on 1 March, so the leap
/// day is the last day of its year and every month's length follows from
/// one linear formula.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Days from 0000-03-01 to 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097; // [0, 146096]
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    let month_from_march = (5 * day_of_year + 2) / 153; // [0, 11]
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1; // [1, 31]
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What chrono writes for `unix_second`: the reference.
    fn chrono_fixdate(unix_second: u64) -> String {
        let moment = chrono::DateTime::from_timestamp(i64::try_from(unix_second).expect("fits"), 0)
            .expect("in chrono's range");
        moment.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
    }

    fn fixdate(unix_second: u64) -> String {
        String::from_utf8(imf_fixdate(unix_second).to_vec()).expect("ASCII")
    }

    #[test]
    fn known_instants() {
        let cases: &[(u64, &str)] = &[
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            // RFC 9110's own example.
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_795_793_400, "Fri, 27 Nov 2026 15:30:00 GMT"),
            (4_107_542_399, "Sun, 28 Feb 2100 23:59:59 GMT"),
            (4_107_542_400, "Mon, 01 Mar 2100 00:00:00 GMT"),
            (UNIX_SECOND_MAX, "Fri, 31 Dec 9999 23:59:59 GMT"),
            // Past what four year digits show: the last second they can.
            (UNIX_SECOND_MAX + 1, "Fri, 31 Dec 9999 23:59:59 GMT"),
            (u64::MAX, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ];
        for (unix_second, expected) in cases {
            assert_eq!(fixdate(*unix_second), *expected, "{unix_second}");
        }
    }

    #[test]
    fn agrees_with_chrono_over_many_instants() {
        let mut checked = 0;
        // The first and last second of every day from 1970 to 2600: every
        // month end, leap day and century rule in that span.
        let days_to_2600 = 230_000;
        for day in 0..days_to_2600 {
            for unix_second in [day * SECONDS_PER_DAY, day * SECONDS_PER_DAY + SECONDS_PER_DAY - 1] {
                assert_eq!(fixdate(unix_second), chrono_fixdate(unix_second), "{unix_second}");
                checked += 1;
            }
        }
        // Seconds spread over the whole range, at a stride that is not a
        // multiple of a minute, an hour or a day.
        let mut unix_second = 0;
        while unix_second <= UNIX_SECOND_MAX {
            assert_eq!(fixdate(unix_second), chrono_fixdate(unix_second), "{unix_second}");
            unix_second += 1_266_989;
            checked += 1;
        }
        // Every second of one day.
        let day = 20_000 * SECONDS_PER_DAY;
        for unix_second in day..day + SECONDS_PER_DAY {
            assert_eq!(fixdate(unix_second), chrono_fixdate(unix_second), "{unix_second}");
            checked += 1;
        }
        assert!(checked > 700_000, "{checked}");
    }

    #[test]
    fn the_line_is_formatted_once_per_second() {
        let formats = || CACHED_LINE.with(|cached| cached.get().formats);
        let before = formats();
        let mut out = b"x".to_vec();
        write_date_line_at(&mut out, 784_111_777);
        write_date_line_at(&mut out, 784_111_777);
        assert_eq!(formats(), before + 1);
        write_date_line_at(&mut out, 784_111_778);
        assert_eq!(formats(), before + 2);
        assert_eq!(
            String::from_utf8(out).expect("ASCII"),
            "xDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Date: Sun, 06 Nov 1994 08:49:38 GMT\r\n"
        );
    }

    #[test]
    fn the_line_shows_now() {
        let mut out = Vec::new();
        let before = now_unix_second();
        write_date_line(&mut out);
        let after = now_unix_second();
        assert_eq!(out.len(), DATE_LINE_BYTES);
        let shown = [chrono_fixdate(before), chrono_fixdate(after)];
        let line = String::from_utf8(out).expect("ASCII");
        assert!(
            shown.iter().any(|date| line == format!("Date: {date}\r\n")),
            "{line:?} vs {shown:?}"
        );
    }
}
