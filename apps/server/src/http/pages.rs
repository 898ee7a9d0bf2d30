//! Server-rendered, mobile-first HTML in Chinese with English beside it: compile-time checked, auto-escaping
//! templates (askama, `apps/server/templates/`), one stylesheet served from `/static/`, and a Content-Security-Policy
//! that allows no inline style or script.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;
use redemption_core::{Campaign, Coupon, CouponStatus};

/// The policy of every page: nothing inline, nothing from elsewhere, no framing.
pub const CSP: &str =
    "default-src 'self'; img-src 'self' data: https:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Where WeChat's JS-SDK script (`jweixin.js`) comes from, unless a simulator stands in for it.
pub const JSSDK_ORIGIN: &str = "https://res.wx.qq.com";

/// Allows the JS-SDK's script and its calls on `res`, a page that uses it (and on no other): from `sim` (the
/// sandbox's simulator, standing in for WeChat) or else from WeChat's [`JSSDK_ORIGIN`].
pub fn allow_jssdk(res: &mut HttpResponse, sim: Option<&str>) {
    let origin = sim.unwrap_or(JSSDK_ORIGIN);
    let csp = format!(
        "default-src 'self'; script-src 'self' {origin}; connect-src 'self' {origin}; img-src 'self' data: https:; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&csp) {
        res.headers_mut()
            .insert(actix_web::http::header::CONTENT_SECURITY_POLICY, v);
    }
}

/// Renders a page with the headers every page carries.
pub fn render(status: StatusCode, template: &impl Template) -> HttpResponse {
    match template.render() {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            .insert_header(("X-Frame-Options", "DENY"))
            .insert_header(("Content-Security-Policy", CSP))
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("internal error")
        }
    }
}

/// An error page.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    zh: &'a str,
    en: &'a str,
    actions: &'a [Action],
}

/// A next step an error page offers: a link.
#[derive(Clone, Debug)]
pub struct Action {
    /// Where it goes (a path on this server).
    pub href: String,
    /// What it says, "中文 · English".
    pub label: String,
}

impl Action {
    /// A link.
    pub fn new(href: impl Into<String>, label: impl Into<String>) -> Action {
        Action {
            href: href.into(),
            label: label.into(),
        }
    }

    /// "Home".
    pub fn home() -> Action {
        Action::new("/", "返回首页 · Home")
    }

    /// "Try again" on the same page.
    pub fn retry(href: impl Into<String>) -> Action {
        Action::new(href, "重试 · Try again")
    }
}

/// An error page with a Chinese headline, an English line and the way home.
pub fn error_page(status: StatusCode, zh: &str, en: &str) -> HttpResponse {
    error_page_with(status, zh, en, &[Action::home()])
}

/// An error page with its next steps.
pub fn error_page_with(status: StatusCode, zh: &str, en: &str, actions: &[Action]) -> HttpResponse {
    let mut res = render(
        status,
        &ErrorPage {
            title: zh,
            zh,
            en,
            actions,
        },
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        res.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from_static("5"),
        );
    }
    res
}

/// A page that tells the visitor something went well, and what to do next.
#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    zh: &'a str,
    en: &'a str,
    actions: &'a [Action],
}

/// A page saying something was done (a Chinese headline, an English line), with its next steps.
pub fn message_page(zh: &str, en: &str, actions: &[Action]) -> HttpResponse {
    render(
        StatusCode::OK,
        &MessagePage {
            title: zh,
            zh,
            en,
            actions,
        },
    )
}

/// The page for WeChat (or the database) failing: 503, with a retry link to `retry`.
pub fn unavailable_page(retry: &str) -> HttpResponse {
    error_page_with(
        StatusCode::SERVICE_UNAVAILABLE,
        "服务暂时不可用",
        "WeChat or this service did not answer just now: try again in a few seconds.",
        &[Action::retry(retry), Action::home()],
    )
}

/// A coupon as the pages show it.
#[derive(Clone, Debug)]
pub struct CouponView {
    /// The campaign's title.
    pub title: String,
    /// "¥18" or "¥18.50"; empty without a value.
    pub value: String,
    /// "面值 ¥18 · face value": what the coupon is worth, not a price.
    pub value_label: String,
    /// The campaign's description.
    pub description: String,
    /// Valid from, Beijing time.
    pub valid_from: String,
    /// Valid until, Beijing time.
    pub valid_until: String,
    /// `issued`, `pending` (not valid yet), `redeemed`, `void`, `expired` (CSS class and `data-status`).
    pub status: &'static str,
    /// The status in Chinese.
    pub status_zh: &'static str,
    /// The status in English.
    pub status_en: &'static str,
    /// When it was redeemed, Beijing time.
    pub redeemed_at: Option<String>,
    /// What the holder should know and do, Chinese · English (none for a usable coupon).
    pub notice: Option<String>,
}

/// "¥18", "¥18.50", or nothing.
pub fn money(fen: Option<u64>) -> String {
    match fen {
        Some(f) if f % 100 == 0 => format!("¥{}", f / 100),
        Some(f) => format!("¥{}.{:02}", f / 100, f % 100),
        None => String::new(),
    }
}

/// A millisecond timestamp in Beijing time (UTC+8), to the minute.
pub fn beijing(ms: i64) -> String {
    crate::platform::time::beijing(ms)
}

/// The status's words: Chinese, English.
pub fn status_words(status: CouponStatus) -> (&'static str, &'static str) {
    match status {
        CouponStatus::Issued => ("可使用", "valid"),
        CouponStatus::Redeemed => ("已核销", "redeemed"),
        CouponStatus::Void => ("已作废", "void"),
        CouponStatus::Expired => ("已过期", "expired"),
    }
}

/// The time zone every page's times are in.
pub const TZ_LABEL: &str = "北京时间 UTC+8";

impl CouponView {
    /// The view of `coupon` at `now`.
    pub fn new(coupon: &Coupon, campaign: &Campaign, now: i64) -> Self {
        let status = coupon.effective_status(campaign, now);
        let pending = status == CouponStatus::Issued && now < campaign.valid_from;
        let (status_zh, status_en) = if pending {
            ("未到使用时间", "not valid yet")
        } else {
            status_words(status)
        };
        let value = money(campaign.value_fen);
        // The notice says what to know or do next; the badge already says the status (no line repeats it).
        let notice = if pending {
            Some(format!(
                "从 {} 起可用 · Usable from {} ({TZ_LABEL})",
                beijing(campaign.valid_from),
                beijing(campaign.valid_from)
            ))
        } else {
            match status {
                CouponStatus::Issued => None,
                // The card shows when; the live page flips to this line by itself.
                CouponStatus::Redeemed => Some("核销成功 · Redeemed: nothing more to show".to_owned()),
                CouponStatus::Void => Some(
                    "不能再使用，如有疑问请联系商家 · It can no longer be used: ask the shop if unexpected".to_owned(),
                ),
                CouponStatus::Expired => Some(format!(
                    "已于 {} 到期 · It ended on {} ({TZ_LABEL})",
                    beijing(campaign.valid_until),
                    beijing(campaign.valid_until)
                )),
            }
        };
        CouponView {
            title: campaign.title.clone(),
            value_label: if value.is_empty() {
                String::new()
            } else {
                format!("面值 {value} · face value")
            },
            value,
            description: campaign.description.clone().unwrap_or_default(),
            valid_from: beijing(campaign.valid_from),
            valid_until: beijing(campaign.valid_until),
            status: if pending { "pending" } else { status.as_str() },
            status_zh,
            status_en,
            redeemed_at: coupon.redeemed_at.map(beijing),
            notice,
        }
    }

    /// Whether the holder can show it for redemption now (its QR is shown only then).
    pub fn usable(&self) -> bool {
        self.status == "issued"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_pages_escape_and_carry_a_strict_policy() {
        let res = error_page(StatusCode::NOT_FOUND, "<script>x</script>", "a & b");
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let csp = res.headers().get("content-security-policy").unwrap().to_str().unwrap();
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        let html = ErrorPage {
            title: "<script>x</script>",
            zh: "<script>x</script>",
            en: "a & b",
            actions: &[Action::home()],
        }
        .render()
        .unwrap();
        assert!(!html.contains("<script>x"), "{html}");
        assert!(
            html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
            "{html}"
        );
        assert!(html.contains("a &#38; b") || html.contains("a &amp; b"), "{html}");
        assert!(html.contains("/static/app.css?v="), "{html}");
        assert!(!html.contains("<style"), "no inline style: {html}");
    }

    #[test]
    fn money_and_times_read_as_people_expect() {
        assert_eq!(money(Some(1800)), "¥18");
        assert_eq!(money(Some(1850)), "¥18.50");
        assert_eq!(money(None), "");
        assert_eq!(beijing(0), "1970-01-01 08:00");
    }
}
