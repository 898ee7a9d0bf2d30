//! Cursor paging for the admin lists: `?limit=&cursor=` in, `{"items": [...], "next_cursor"}` out.
//!
//! A cursor is opaque to clients (base64url of the last row's id): stable while rows are added, unlike an offset.

use crate::http::errors::ApiError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

/// Rows per page when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 50;
/// The largest `limit`.
pub const MAX_LIMIT: i64 = 500;

/// A validated page request.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    /// Rows wanted.
    pub limit: i64,
    /// Rows after (or before, for newest-first lists) this id.
    pub after: Option<i64>,
}

impl Page {
    /// Validates `limit` (1 to [`MAX_LIMIT`]) and `cursor` (one this server handed out).
    pub fn parse(limit: Option<i64>, cursor: Option<&str>) -> Result<Page, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_limit",
                format!("limit must be 1 to {MAX_LIMIT}"),
            ));
        }
        let after = cursor
            .filter(|c| !c.is_empty())
            .map(|c| {
                URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    // Ids start at 1: `id:0`, `id:-1` or `id:+5` were never handed out.
                    .and_then(|s| {
                        s.strip_prefix("id:")
                            .and_then(|n| n.parse::<i64>().ok().filter(|&id| id > 0 && !n.starts_with('+')))
                    })
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_cursor",
                            "cursor is not one this server handed out: use next_cursor from the previous page",
                        )
                    })
            })
            .transpose()?;
        Ok(Page { limit, after })
    }

    /// Rows to fetch: one more than the limit tells whether there is a next page.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }
}

/// The cursor that continues after `id`.
pub fn cursor_after(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("id:{id}"))
}

/// One page of a list.
#[derive(Debug, Serialize)]
pub struct Paged<T: Serialize> {
    /// The rows.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Cuts `rows` (fetched with [`Page::fetch`]) to the page and computes the next cursor from the last row's id.
pub fn paged<R, T: Serialize>(
    page: Page,
    mut rows: Vec<R>,
    id: impl Fn(&R) -> i64,
    view: impl Fn(&R) -> T,
) -> Paged<T> {
    let more = rows.len() as i64 > page.limit;
    rows.truncate(page.limit.max(0) as usize);
    let next_cursor = if more {
        rows.last().map(|r| cursor_after(id(r)))
    } else {
        None
    };
    Paged {
        items: rows.iter().map(view).collect(),
        next_cursor,
    }
}

/// The query string as `T`, or 400 `invalid_query` naming what is wrong.
pub fn query<T: serde::de::DeserializeOwned>(req: &actix_web::HttpRequest) -> Result<T, ApiError> {
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::bad_request("invalid_query", format!("query string: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let p = Page::parse(Some(2), Some(&cursor_after(41))).unwrap();
        assert_eq!((p.limit, p.after), (2, Some(41)));
        assert_eq!(Page::parse(None, None).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(Page::parse(Some(0), None).unwrap_err().code(), "invalid_limit");
        assert_eq!(Page::parse(Some(501), None).unwrap_err().code(), "invalid_limit");
        assert_eq!(Page::parse(None, Some("bm9wZQ")).unwrap_err().code(), "invalid_cursor");
        assert_eq!(Page::parse(None, Some("%%%")).unwrap_err().code(), "invalid_cursor");
        for never in ["id:-1", "id:0", "id:+5"] {
            let cursor = URL_SAFE_NO_PAD.encode(never);
            assert_eq!(
                Page::parse(None, Some(&cursor)).unwrap_err().code(),
                "invalid_cursor",
                "{never}"
            );
        }
        let out = paged(Page { limit: 2, after: None }, vec![1, 2, 3], |r| *r, |r| *r * 10);
        assert_eq!(out.items, vec![10, 20]);
        assert_eq!(out.next_cursor, Some(cursor_after(2)));
        let last = paged(Page { limit: 2, after: None }, vec![1, 2], |r| *r, |r| *r);
        assert_eq!(last.next_cursor, None);
    }
}
