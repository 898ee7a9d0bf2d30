//! Time as people and WeChat read it, in one place: RFC 3339 for APIs, Beijing time (UTC+8, no daylight saving) for
//! pages, exports and WeChat Pay v2's compact times.

use chrono::Offset as _;
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};

/// China Standard Time, UTC+8 all year.
pub fn beijing_offset() -> FixedOffset {
    // 8 h is within ±24 h, so this never fails; the fallback only keeps the function total.
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

fn from_ms(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

/// A millisecond timestamp as RFC 3339 in UTC, with the offset written `+00:00` and fractions only when present
/// (`2026-12-04T06:00:00+00:00`). Empty for a timestamp out of range.
pub fn rfc3339(ms: i64) -> String {
    from_ms(ms).map(|t| t.to_rfc3339()).unwrap_or_default()
}

/// A millisecond timestamp as RFC 3339 in UTC to the second, `Z` (`2026-12-04T06:00:00Z`).
pub fn rfc3339_secs(ms: i64) -> String {
    from_ms(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Unix seconds as [`rfc3339_secs`].
pub fn rfc3339_unix(secs: i64) -> Option<String> {
    DateTime::from_timestamp(secs, 0).map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// A millisecond timestamp in Beijing time formatted with `format` (chrono's strftime).
pub fn beijing_format(ms: i64, format: &str) -> String {
    from_ms(ms)
        .map(|t| t.with_timezone(&beijing_offset()).format(format).to_string())
        .unwrap_or_default()
}

/// A millisecond timestamp in Beijing time, to the minute (`2026-12-04 14:00`), as pages show it.
pub fn beijing(ms: i64) -> String {
    beijing_format(ms, "%Y-%m-%d %H:%M")
}

/// A millisecond timestamp as RFC 3339 in Beijing time (`2026-12-04T14:00:00+08:00`), as exports write it.
pub fn beijing_rfc3339(ms: i64) -> String {
    beijing_format(ms, "%Y-%m-%dT%H:%M:%S%:z")
}

/// Unix seconds as `yyyyMMddHHmmss` in Beijing time, as WeChat Pay v2 wants times.
pub fn beijing_compact(secs: i64) -> String {
    beijing_format(secs.saturating_mul(1000), "%Y%m%d%H%M%S")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_one_instant() {
        // 2026-12-04T06:07:08Z
        let ms = 1_796_364_428_000;
        assert_eq!(rfc3339(ms), "2026-12-04T06:07:08+00:00");
        assert_eq!(rfc3339_secs(ms), "2026-12-04T06:07:08Z");
        assert_eq!(rfc3339_unix(ms / 1000).as_deref(), Some("2026-12-04T06:07:08Z"));
        assert_eq!(beijing(ms), "2026-12-04 14:07");
        assert_eq!(beijing_rfc3339(ms), "2026-12-04T14:07:08+08:00");
        assert_eq!(beijing_compact(ms / 1000), "20261204140708");
        // Past midnight in Beijing, still the day before in UTC.
        assert_eq!(beijing(1_796_320_800_000), "2026-12-04 02:00");
        // Out of range: empty, never a panic.
        assert_eq!(rfc3339(i64::MAX), "");
        assert_eq!(beijing(i64::MIN), "");
    }
}
