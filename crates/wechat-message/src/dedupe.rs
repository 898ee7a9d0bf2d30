//! Handling each push once: WeChat retries a push 3 times, 5 s apart, when the answer is slow — and several
//! server instances may each get a copy.

use async_trait::async_trait;
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use wechat_core::StoreError;

/// Remembers which pushes were seen, shared by every instance that receives them (the wxkit server keeps it in its
/// database, with a unique key).
#[async_trait]
pub trait DedupeStore: Send + Sync + fmt::Debug {
    /// Records `key` (see [`Incoming::dedupe_key`](crate::incoming::Incoming::dedupe_key)) and returns whether
    /// this is the first time it was seen. Atomic: of any number of concurrent callers with one key, one gets
    /// `true`.
    async fn first_seen(&self, key: &str, now_ms: i64) -> Result<bool, StoreError>;
}

/// An in-process [`DedupeStore`] that forgets keys after `keep_secs` (WeChat's retries end within 15 s).
#[derive(Debug)]
pub struct MemoryDedupeStore {
    seen: Mutex<HashMap<String, i64>>,
    keep_ms: i64,
}

impl MemoryDedupeStore {
    /// A store that keeps keys for `keep_secs` seconds.
    pub fn new(keep_secs: i64) -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            keep_ms: keep_secs.max(1) * 1000,
        }
    }
}

#[async_trait]
impl DedupeStore for MemoryDedupeStore {
    async fn first_seen(&self, key: &str, now_ms: i64) -> Result<bool, StoreError> {
        let mut seen = self
            .seen
            .lock()
            .map_err(|_| StoreError::new("dedupe store lock poisoned"))?;
        if seen.len() > 100_000 {
            let keep = self.keep_ms;
            seen.retain(|_, at| now_ms - *at < keep);
        }
        match seen.get(key) {
            Some(at) if now_ms - at < self.keep_ms => Ok(false),
            _ => {
                seen.insert(key.to_owned(), now_ms);
                Ok(true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_first_seen_once_within_the_window() {
        let s = MemoryDedupeStore::new(60);
        assert!(s.first_seen("msg:1", 0).await.unwrap());
        assert!(!s.first_seen("msg:1", 59_000).await.unwrap());
        assert!(s.first_seen("msg:2", 59_000).await.unwrap());
        assert!(
            s.first_seen("msg:1", 61_000).await.unwrap(),
            "forgotten after the window"
        );
    }
}
