//! The static assets (stylesheet, page scripts), embedded in the binary and served by one handler under
//! `/static/{name}`. Pages link them by [`url`], which carries a hash of the content (`?v=`): an asset that changes
//! gets a new URL, so a year-long `immutable` cache never serves a stale script — and an unchanged one keeps its URL
//! across releases.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use std::sync::LazyLock;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../static/app.css"),
    },
    Asset {
        name: "buy.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../static/buy.js"),
    },
    Asset {
        name: "card.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../static/card.js"),
    },
    Asset {
        name: "coupon.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../static/coupon.js"),
    },
    Asset {
        name: "login.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../static/login.js"),
    },
    Asset {
        name: "scan.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../static/scan.js"),
    },
    Asset {
        name: "share.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../static/share.js"),
    },
];

/// Each asset's content hash (the first 16 hex characters of its SHA-256), computed once.
static HASHES: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| crate::platform::crypto::sha256_hex(a.body)[..16].to_owned())
        .collect()
});

fn find(name: &str) -> Option<(usize, &'static Asset)> {
    ASSETS.iter().enumerate().find(|(_, a)| a.name == name)
}

/// The URL of asset `name` with its content hash: `/static/app.css?v=…`. An unknown name (a template typo) still
/// gives a URL — to a 404 a test sees.
pub fn url(name: &str) -> String {
    match find(name) {
        Some((i, _)) => format!("/static/{name}?v={}", HASHES[i]),
        None => format!("/static/{name}"),
    }
}

/// The embedded text of asset `name`.
pub fn body(name: &str) -> Option<&'static str> {
    find(name).map(|(_, a)| a.body)
}

/// True when the request's `If-None-Match` (parsed as a typed header) names `etag` or `*`: answer 304. The weak
/// comparison of RFC 9110 §13.1.2, as `If-None-Match` requires.
pub fn not_modified(req: &HttpRequest, etag: &header::EntityTag) -> bool {
    match <header::IfNoneMatch as header::Header>::parse(req) {
        Ok(header::IfNoneMatch::Any) => true,
        Ok(header::IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(etag)),
        Err(_) => false,
    }
}

/// `GET /favicon.ico`: the site's icon (a PNG, which every browser takes under that name), so that no page logs a 404
/// for it.
pub async fn favicon() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/png")
        .insert_header(("Cache-Control", "public, max-age=86400"))
        .body(&include_bytes!("../../static/favicon.png")[..])
}

/// `GET /static/{name}`: the asset, cached for a year (pages ask for it by its content hash, so a changed asset is
/// a new URL); `ETag` is the hash, so a revalidation costs a 304.
pub async fn serve(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    let Some((i, asset)) = find(&name) else {
        return crate::http::errors::envelope(actix_web::http::StatusCode::NOT_FOUND, "not_found", "no such file");
    };
    let hash = &HASHES[i];
    let etag = header::EntityTag::new_strong(hash.clone());
    let fresh = not_modified(&req, &etag);
    let cache = "public, max-age=31536000, immutable";
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::CACHE_CONTROL, cache))
        .insert_header(header::ETag(etag));
    if fresh {
        res.finish()
    } else {
        res.content_type(asset.content_type).body(asset.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_content_hash() {
        let u = url("app.css");
        assert!(u.starts_with("/static/app.css?v="), "{u}");
        assert_eq!(u.len(), "/static/app.css?v=".len() + 16);
        assert_ne!(url("coupon.js"), url("card.js"));
        assert!(body("login.js").is_some_and(|b| !b.is_empty()));
        assert_eq!(url("nope.js"), "/static/nope.js");
    }
}
