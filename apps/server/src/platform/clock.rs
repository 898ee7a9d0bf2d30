//! Wall-clock time, in one place (the unit every table uses: Unix milliseconds).

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
