//! Calendar maths on Unix milliseconds (UTC), the same on the server and in the browser.

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// Formats Unix milliseconds as `YYYY-MM-DD HH:MM` UTC, the same on server and browser.
pub fn format_ts(ms: i64) -> String {
    let (date, secs_of_day) = split_ts(ms);
    format!("{date} {:02}:{:02}", secs_of_day / 3600, (secs_of_day % 3600) / 60)
}

/// Formats Unix milliseconds as RFC 3339 UTC to the second: `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339_utc(ms: i64) -> String {
    let (date, s) = split_ts(ms);
    format!("{date}T{:02}:{:02}:{:02}Z", s / 3600, (s % 3600) / 60, s % 60)
}

/// Formats Unix milliseconds as `YYYY-MM-DD` (UTC).
pub fn format_day(ms: i64) -> String {
    split_ts(ms).0
}

fn split_ts(ms: i64) -> (String, i64) {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let secs_of_day = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (format!("{y:04}-{m:02}-{d:02}"), secs_of_day)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A proleptic Gregorian date to days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DD` to Unix milliseconds at 00:00 UTC.
pub fn parse_day(raw: &str) -> Option<i64> {
    let mut parts = raw.trim().splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // Reject dates such as 2025-02-31 that roll into the next month.
    (civil_from_days(days) == (y, m, d)).then_some(days * 86_400_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_known_timestamps() {
        assert_eq!(format_ts(0), "1970-01-01 00:00");
        assert_eq!(format_ts(1_700_000_000_000), "2023-11-14 22:13");
        assert_eq!(format_day(951_782_400_000), "2000-02-29");
        assert_eq!(parse_day("2000-02-29"), Some(951_782_400_000));
        assert_eq!(parse_day("2001-02-29"), None);
        assert_eq!(parse_day("junk"), None);
    }

    proptest! {
        #[test]
        fn civil_round_trip(days in -100_000i64..200_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
