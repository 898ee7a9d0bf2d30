//! `multipart/form-data` for the one admin upload (a card's logo and its fields), read by actix-multipart with a
//! limit per part: a file part at most `file_bytes`, a text field at most `text_bytes`, at most `max_parts` parts.

use actix_web::http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use futures_util::StreamExt as _;

/// One part of the form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The field name.
    pub name: String,
    /// The file name, for file parts.
    pub filename: Option<String>,
    /// The bytes.
    pub data: Vec<u8>,
}

impl Part {
    /// The value as text (fields).
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.data).ok()
    }
}

/// What a form may hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Parts at most.
    pub max_parts: usize,
    /// Bytes of one file part at most.
    pub file_bytes: usize,
    /// Bytes of one text field at most.
    pub text_bytes: usize,
}

/// Whether `content_type` is `multipart/form-data` (with its boundary).
pub fn is_form_data(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|kind| kind.trim().eq_ignore_ascii_case("multipart/form-data"))
}

/// Reads the parts of `body` (a request already in memory, size-limited by its route) sent with `content_type`;
/// `Err` says what is malformed or too large.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use wxkit::http::multipart::{Limits, read};
/// let body = b"--XY\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n--XY--\r\n";
/// let limits = Limits { max_parts: 8, file_bytes: 1024, text_bytes: 64 };
/// let parts = read("multipart/form-data; boundary=XY", body.to_vec(), limits).await.unwrap();
/// assert_eq!((parts[0].name.as_str(), parts[0].text()), ("title", Some("hello")));
/// # });
/// ```
pub async fn read(content_type: &str, body: Vec<u8>, limits: Limits) -> Result<Vec<Part>, String> {
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_str(content_type).map_err(|_| "the content type is not a header value")?;
    headers.insert(CONTENT_TYPE, value);
    let stream = futures_util::stream::once(async move {
        Ok::<_, actix_web::error::PayloadError>(actix_web::web::Bytes::from(body))
    });
    let mut form = actix_multipart::Multipart::new(&headers, stream);
    let mut parts = Vec::new();
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|e| e.to_string())?;
        if parts.len() == limits.max_parts {
            return Err("too many parts".into());
        }
        let name = field.name().ok_or("a part has no name")?.to_owned();
        let filename = field
            .content_disposition()
            .and_then(|d| d.get_filename())
            .map(str::to_owned);
        let limit = if filename.is_some() {
            limits.file_bytes
        } else {
            limits.text_bytes
        };
        let mut data = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            if data.len() + chunk.len() > limit {
                return Err(format!("part {name} is larger than {limit} bytes"));
            }
            data.extend_from_slice(&chunk);
        }
        // Text fields get the JSON bodies' rule: UTF-8, and no control character but tab and line breaks (a NUL
        // would be sent on to WeChat, or cut a C string).
        if filename.is_none() {
            let text = std::str::from_utf8(&data).map_err(|_| format!("field {name} is not UTF-8 text"))?;
            if text.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
                return Err(format!("field {name} contains a control character"));
            }
        }
        if name.chars().any(char::is_control) || filename.as_deref().is_some_and(|f| f.chars().any(char::is_control)) {
            return Err("a part's name contains a control character".into());
        }
        parts.push(Part { name, filename, data });
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_parts: 32,
        file_bytes: 1024,
        text_bytes: 64,
    };

    #[tokio::test]
    async fn reads_fields_and_files_and_refuses_broken_bodies() {
        assert!(is_form_data("multipart/form-data; boundary=\"abc\""));
        assert!(!is_form_data("application/json"));
        let ct = "multipart/form-data; boundary=b";
        let body = b"--b\r\nContent-Disposition: form-data; name=\"logo\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x00\r\n--b\r\nContent-Disposition: form-data; name=\"brand_name\"\r\n\r\n\xe5\x92\x96\xe5\x95\xa1\r\n--b--\r\n";
        let parts = read(ct, body.to_vec(), LIMITS).await.unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].filename.as_deref(), Some("a.png"));
        assert_eq!(parts[0].data, b"\x89PNG\r\n\x00");
        assert_eq!(parts[1].text(), Some("咖啡"));
        assert!(read(ct, b"--b\r\nno headers".to_vec(), LIMITS).await.is_err());
        assert!(read(ct, b"nothing".to_vec(), LIMITS).await.is_err());
        assert!(
            read(
                ct,
                b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nunterminated".to_vec(),
                LIMITS
            )
            .await
            .is_err()
        );
        // Per-part limits: a text field over its limit, too many parts.
        let long = format!(
            "--b\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\n{}\r\n--b--\r\n",
            "x".repeat(65)
        );
        assert!(
            read(ct, long.into_bytes(), LIMITS)
                .await
                .unwrap_err()
                .contains("larger")
        );
        // Text fields carry no NUL or other control character (a file may carry anything).
        let nul = b"--b\r\nContent-Disposition: form-data; name=\"brand_name\"\r\n\r\na\x00b\r\n--b--\r\n";
        assert!(read(ct, nul.to_vec(), LIMITS).await.unwrap_err().contains("control"));
        let bell = b"--b\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\nring\x07\r\n--b--\r\n";
        assert!(read(ct, bell.to_vec(), LIMITS).await.is_err());
        let latin1 = b"--b\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\n\xe9t\xe9\r\n--b--\r\n";
        assert!(read(ct, latin1.to_vec(), LIMITS).await.unwrap_err().contains("UTF-8"));
        let lines = b"--b\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\na\tb\nc\r\n--b--\r\n";
        assert_eq!(
            read(ct, lines.to_vec(), LIMITS).await.unwrap()[0].text(),
            Some("a\tb\nc")
        );
        let many = "--b\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\nv\r\n".repeat(33) + "--b--\r\n";
        assert_eq!(read(ct, many.into_bytes(), LIMITS).await.unwrap_err(), "too many parts");
    }
}
