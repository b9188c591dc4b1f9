//! Budget periods: a calendar month in UTC, or a run of whole days counted from an anchor.

use perpetuo_types::time::{civil_from_days, days_from_civil};

const DAY_MS: i64 = 86_400_000;

/// How a budget's periods are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// From the first of the month, 00:00 UTC, to the first of the next.
    Month,
    /// `days` long, the first starting at `anchor` (Unix ms).
    Days { days: u32, anchor: i64 },
}

impl Period {
    /// The period holding `now`: `[start, end)` in Unix ms.
    pub fn current(self, now: i64) -> (i64, i64) {
        match self {
            Self::Month => {
                let (y, m, _) = civil_from_days(now.div_euclid(DAY_MS));
                let start = days_from_civil(y, m, 1) * DAY_MS;
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (start, days_from_civil(ny, nm, 1) * DAY_MS)
            }
            Self::Days { days, anchor } => {
                let length = i64::from(days.max(1)) * DAY_MS;
                let start = anchor + (now - anchor).div_euclid(length) * length;
                (start, start + length)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perpetuo_types::time::parse_day;

    #[test]
    fn months_run_from_the_first_to_the_first() {
        let now = parse_day("2026-11-30").unwrap() + 5 * 3_600_000;
        assert_eq!(Period::Month.current(now), (parse_day("2026-11-01").unwrap(), parse_day("2026-12-01").unwrap()));
        let december = parse_day("2026-12-31").unwrap() + DAY_MS - 1;
        assert_eq!(
            Period::Month.current(december),
            (parse_day("2026-12-01").unwrap(), parse_day("2027-01-01").unwrap())
        );
        let leap = parse_day("2028-02-29").unwrap();
        assert_eq!(Period::Month.current(leap).1, parse_day("2028-03-01").unwrap());
    }

    #[test]
    fn day_periods_count_from_their_anchor() {
        let anchor = parse_day("2026-11-03").unwrap() + 1234;
        let period = Period::Days { days: 7, anchor };
        assert_eq!(period.current(anchor), (anchor, anchor + 7 * DAY_MS));
        assert_eq!(period.current(anchor + 7 * DAY_MS - 1).0, anchor);
        assert_eq!(period.current(anchor + 7 * DAY_MS).0, anchor + 7 * DAY_MS);
        assert_eq!(period.current(anchor + 15 * DAY_MS).0, anchor + 14 * DAY_MS);
        // Before the anchor (a clock set back): still a whole period holding `now`.
        let (start, end) = period.current(anchor - 1);
        let before = anchor - 1;
        assert!(start <= before && before < end);
    }
}
