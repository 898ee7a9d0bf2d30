//! A small `multipart/form-data` reader for the one admin upload (a card's logo and its fields): the whole body is
//! already in memory (size-limited by the route), so a streaming parser would buy nothing.

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

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// The `boundary` of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("boundary"))
            .then(|| v.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty() && b.len() <= 70)
    })
}

fn param(header: &str, name: &str) -> Option<String> {
    header.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// Splits `body` into its parts; `Err` says what is malformed.
///
/// ```
/// let body = b"--XY\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n--XY--\r\n";
/// let parts = wxkit::http::multipart::parse("XY", body).unwrap();
/// assert_eq!((parts[0].name.as_str(), parts[0].text()), ("title", Some("hello")));
/// ```
pub fn parse(boundary: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    let delimiter = format!("--{boundary}");
    let next = format!("\r\n--{boundary}");
    let mut at = find(body, delimiter.as_bytes(), 0).ok_or("the body has no boundary")? + delimiter.len();
    let mut parts = Vec::new();
    loop {
        if body.get(at..at + 2) == Some(b"--") {
            return Ok(parts);
        }
        if body.get(at..at + 2) != Some(b"\r\n") {
            return Err("a boundary is not followed by a line break".into());
        }
        at += 2;
        let head_end = find(body, b"\r\n\r\n", at).ok_or("a part has no blank line after its headers")?;
        let head = std::str::from_utf8(&body[at..head_end]).map_err(|_| "part headers are not UTF-8")?;
        let disposition = head
            .split("\r\n")
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case("content-disposition").then_some(v)
            })
            .ok_or("a part has no Content-Disposition")?;
        let name = param(disposition, "name").ok_or("a part has no name")?;
        let data_start = head_end + 4;
        let data_end = find(body, next.as_bytes(), data_start).ok_or("a part is not closed by the boundary")?;
        parts.push(Part {
            name,
            filename: param(disposition, "filename"),
            data: body[data_start..data_end].to_vec(),
        });
        if parts.len() > 32 {
            return Err("too many parts".into());
        }
        at = data_end + next.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_files_and_refuses_broken_bodies() {
        assert_eq!(
            boundary("multipart/form-data; boundary=\"abc\"").as_deref(),
            Some("abc")
        );
        assert_eq!(boundary("application/json"), None);
        let body = b"--b\r\nContent-Disposition: form-data; name=\"logo\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x00\r\n--b\r\nContent-Disposition: form-data; name=\"brand_name\"\r\n\r\n\xe5\x92\x96\xe5\x95\xa1\r\n--b--\r\n";
        let parts = parse("b", body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].filename.as_deref(), Some("a.png"));
        assert_eq!(parts[0].data, b"\x89PNG\r\n\x00");
        assert_eq!(parts[1].text(), Some("咖啡"));
        assert!(parse("b", b"--b\r\nno headers").is_err());
        assert!(parse("b", b"nothing").is_err());
        assert!(
            parse(
                "b",
                b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nunterminated"
            )
            .is_err()
        );
    }
}
