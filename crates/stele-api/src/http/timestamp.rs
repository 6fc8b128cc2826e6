//! Dates as EventStoreDB's JSON writes them: ISO 8601 in UTC with up to seven fractional
//! digits (.NET ticks of 100 ns), trailing zeros dropped: `2024-01-02T03:04:05.678Z`.

use std::time::{SystemTime, UNIX_EPOCH};

const NANOS_PER_TICK: u32 = 100;

/// Formats a time at or after the Unix epoch; earlier times (a clock set before 1970) are
/// shown as the epoch.
pub(crate) fn iso8601(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let second_of_day = seconds % 86_400;
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    );
    let ticks = since_epoch.subsec_nanos() / NANOS_PER_TICK;
    if ticks > 0 {
        let fraction = format!("{ticks:07}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

/// Year, month (1–12) and day (1–31) of a day counted from 1970-01-01, in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(seconds: u64, nanos: u32) -> String {
        iso8601(UNIX_EPOCH + Duration::new(seconds, nanos))
    }

    #[test]
    fn formats_like_dotnet() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(at(1_704_164_645, 678_000_000), "2024-01-02T03:04:05.678Z");
        assert_eq!(
            at(1_704_164_645, 123_456_789),
            "2024-01-02T03:04:05.1234567Z"
        );
        // 2000-02-29 (a leap day in a century year) and 2100-03-01 (2100 is no leap year).
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00Z");
        assert_eq!(at(1_767_225_599, 0), "2025-12-31T23:59:59Z");
    }
}
