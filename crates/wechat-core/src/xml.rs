//! The WeChat XML codec: flat `<xml><key>value</key>...</xml>` documents (Pay v2 bodies, server pushes), parsed
//! defensively.
//!
//! WeChat Pay bodies are flat maps; server pushes nearly so ([`parse_push`] flattens the rare nested element). Anything else is refused before it can do harm: a DOCTYPE (the XXE and
//! "billion laughs" vector of WeChat Pay's own security advisory), entity references other than the five predefined
//! ones and numeric character references, nesting, processing instructions, bodies over the size cap, non-UTF-8 and
//! truncated input. No file or network is ever touched: there is no entity resolution to do it.

use quick_xml::Reader;
use quick_xml::events::Event;
use std::collections::BTreeMap;

/// The largest body parsed by default (WeChat's notifies are a few KB).
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;
/// The most fields a document may have.
pub const MAX_FIELDS: usize = 256;

/// Why a body was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XmlError {
    /// Larger than the cap.
    #[error("XML body of {size} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Body size.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// Not UTF-8.
    #[error("XML body is not UTF-8")]
    NotUtf8,
    /// A DOCTYPE declaration (DTDs are never processed).
    #[error("XML with a DOCTYPE is refused")]
    Doctype,
    /// An entity reference other than `&amp; &lt; &gt; &quot; &apos;` and numeric ones.
    #[error("XML entity reference &{0}; is not allowed")]
    Entity(String),
    /// Not the flat `<xml><k>v</k></xml>` shape.
    #[error("unexpected XML structure: {0}")]
    Structure(String),
    /// Malformed or truncated XML.
    #[error("malformed XML: {0}")]
    Syntax(String),
}

/// A parsed document: field name → value.
pub type Fields = BTreeMap<String, String>;

/// Parses a WeChat Pay XML body with the default size cap.
///
/// ```
/// let f = wechat_core::xml::parse(b"<xml><return_code><![CDATA[SUCCESS]]></return_code><total_fee>1</total_fee></xml>").unwrap();
/// assert_eq!(f["return_code"], "SUCCESS");
/// assert_eq!(f["total_fee"], "1");
/// let evil = br#"<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><a>&x;</a></xml>"#;
/// assert_eq!(wechat_core::xml::parse(evil), Err(wechat_core::xml::XmlError::Doctype));
/// ```
pub fn parse(body: &[u8]) -> Result<Fields, XmlError> {
    parse_with_limit(body, DEFAULT_MAX_BODY)
}

fn syntax(e: impl std::fmt::Display) -> XmlError {
    XmlError::Syntax(e.to_string())
}

/// Parses with an explicit size cap.
pub fn parse_with_limit(body: &[u8], max: usize) -> Result<Fields, XmlError> {
    parse_impl(body, max, false)
}

/// Parses a server push (message or event): like [`parse`], but a nested element becomes a field named
/// `Parent/Child` instead of an error, so that events we do not model are kept rather than refused. Repeated nested
/// elements are numbered from the second: `Parent/List/Id`, `Parent/List/Id#2`.
///
/// ```
/// let f = wechat_core::xml::parse_push(b"<xml><Event>x</Event><Info><Count>2</Count></Info></xml>").unwrap();
/// assert_eq!(f["Info/Count"], "2");
/// let f = wechat_core::xml::parse_push(b"<xml><E><List><Id>a</Id></List><List><Id>b</Id></List></E></xml>").unwrap();
/// assert_eq!((f["E/List/Id"].as_str(), f["E/List/Id#2"].as_str()), ("a", "b"));
/// assert!(wechat_core::xml::parse_push(b"<xml><A>1</A><A>2</A></xml>").is_err());
/// ```
pub fn parse_push(body: &[u8]) -> Result<Fields, XmlError> {
    parse_impl(body, DEFAULT_MAX_BODY, true)
}

/// An element's name; an element with attributes is refused. WeChat's documents never carry one, and refusing them
/// unread means no attribute list is ever walked (the quadratic duplicate-name check of RUSTSEC-2026-0194 cannot be
/// reached; the codec uses `Reader`, never the namespace-resolving `NsReader` of RUSTSEC-2026-0195).
fn element_name(start: &quick_xml::events::BytesStart<'_>) -> Result<String, XmlError> {
    let name = start.name().as_ref().to_owned();
    if !start.attributes_raw().trim().is_empty() {
        return Err(XmlError::Structure(format!("attributes on <{name}>")));
    }
    Ok(name)
}

fn parse_impl(body: &[u8], max: usize, nested: bool) -> Result<Fields, XmlError> {
    if body.len() > max {
        return Err(XmlError::TooLarge { size: body.len(), max });
    }
    let text = std::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut fields = Fields::new();
    // depth 0: before the root; 1: inside the root; 2: inside a field; deeper only with `nested`.
    let mut depth = 0usize;
    let mut root_seen = false;
    let mut current: Option<(String, String)> = None;
    let mut path: Vec<String> = Vec::new();
    loop {
        let event = reader.read_event().map_err(syntax)?;
        match event {
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Decl(_) | Event::Comment(_) => {}
            Event::PI(_) => return Err(XmlError::Structure("processing instruction".into())),
            Event::Start(start) => {
                let name = element_name(&start)?;
                match depth {
                    0 if !root_seen => root_seen = true,
                    0 => return Err(XmlError::Structure("more than one root element".into())),
                    1 => {
                        if fields.len() >= MAX_FIELDS {
                            return Err(XmlError::Structure("too many fields".into()));
                        }
                        path = vec![name.clone()];
                        current = Some((name, String::new()));
                    }
                    d if nested && d < 8 => {
                        if fields.len() >= MAX_FIELDS {
                            return Err(XmlError::Structure("too many fields".into()));
                        }
                        path.truncate(d - 1);
                        path.push(name);
                        current = Some((path.join("/"), String::new()));
                    }
                    _ => return Err(XmlError::Structure(format!("nested element <{name}>"))),
                }
                depth += 1;
            }
            Event::Empty(start) => {
                let name = element_name(&start)?;
                match depth {
                    // The same rules as for `<a>..</a>`: an empty element is a field too.
                    1 => {
                        if fields.len() >= MAX_FIELDS {
                            return Err(XmlError::Structure("too many fields".into()));
                        }
                        if fields.insert(name.clone(), String::new()).is_some() {
                            return Err(XmlError::Structure(format!("duplicate field <{name}>")));
                        }
                    }
                    0 if !root_seen => root_seen = true,
                    _ => return Err(XmlError::Structure(format!("unexpected element <{name}/>"))),
                }
            }
            Event::End(_) => {
                if depth >= 2
                    && let Some((name, value)) = current.take()
                {
                    // A repeated nested element (the `<List>` items of a subscribe-message event) is numbered:
                    // `Parent/List/TemplateId`, `Parent/List/TemplateId#2`, … A repeated top-level field stays an
                    // error: WeChat never sends one, and two values for one name is how smuggling starts.
                    let key = if nested && name.contains('/') && fields.contains_key(&name) {
                        (2..=MAX_FIELDS)
                            .map(|i| format!("{name}#{i}"))
                            .find(|k| !fields.contains_key(k))
                            .ok_or_else(|| XmlError::Structure("too many fields".into()))?
                    } else {
                        name
                    };
                    if fields.insert(key.clone(), value).is_some() {
                        return Err(XmlError::Structure(format!("duplicate field <{key}>")));
                    }
                }
                depth = depth.saturating_sub(1);
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                match (&mut current, depth) {
                    (Some((_, value)), d) if d >= 2 => value.push_str(&content),
                    _ if content.trim().is_empty() => {}
                    _ => return Err(XmlError::Structure("text outside a field".into())),
                }
            }
            Event::CData(c) => {
                let content = c.into_inner();
                match (&mut current, depth) {
                    (Some((_, value)), d) if d >= 2 => value.push_str(&content),
                    _ => return Err(XmlError::Structure("CDATA outside a field".into())),
                }
            }
            Event::GeneralRef(r) => {
                let name = r.borrow().into_inner().into_owned();
                let resolved = match name.as_str() {
                    "amp" => '&',
                    "lt" => '<',
                    "gt" => '>',
                    "quot" => '"',
                    "apos" => '\'',
                    _ if name.starts_with('#') => r
                        .resolve_char_ref()
                        .map_err(syntax)?
                        .ok_or_else(|| XmlError::Entity(name.clone()))?,
                    _ => return Err(XmlError::Entity(name)),
                };
                match (&mut current, depth) {
                    (Some((_, value)), d) if d >= 2 => value.push(resolved),
                    _ => return Err(XmlError::Structure("reference outside a field".into())),
                }
            }
            Event::Eof => break,
        }
    }
    if !root_seen || depth != 0 {
        return Err(XmlError::Syntax("truncated document".into()));
    }
    // NUL cannot be stored in PostgreSQL text and truncates C strings: no WeChat body carries one.
    if fields.iter().any(|(k, v)| k.contains('\0') || v.contains('\0')) {
        return Err(XmlError::Structure("NUL character".into()));
    }
    Ok(fields)
}

/// Serializes fields as `<xml>` with every value in CDATA (WeChat's own style). Field names must be XML names.
///
/// ```
/// let mut f = wechat_core::xml::Fields::new();
/// f.insert("return_code".into(), "SUCCESS".into());
/// f.insert("note".into(), "a ]]> b".into());
/// let xml = wechat_core::xml::to_xml(&f);
/// assert_eq!(wechat_core::xml::parse(xml.as_bytes()).unwrap(), f);
/// ```
pub fn to_xml(fields: &Fields) -> String {
    let mut out = String::from("<xml>");
    for (k, v) in fields {
        out.push('<');
        out.push_str(k);
        out.push_str("><![CDATA[");
        // "]]>" cannot appear inside CDATA: split it across two sections.
        out.push_str(&v.replace("]]>", "]]]]><![CDATA[>"));
        out.push_str("]]></");
        out.push_str(k);
        out.push('>');
    }
    out.push_str("</xml>");
    out
}

/// True when `name` is usable as a field name (ASCII letters, digits, `_`, not starting with a digit).
pub fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_documents_are_refused() {
        let billion_laughs = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><xml><a>&lol2;</a></xml>"#;
        assert_eq!(parse(billion_laughs), Err(XmlError::Doctype));
        assert_eq!(parse(b"<xml><a>&ext;</a></xml>"), Err(XmlError::Entity("ext".into())));
        assert!(matches!(
            parse(&vec![b'a'; 10 * 1024 * 1024]),
            Err(XmlError::TooLarge { .. })
        ));
        assert_eq!(parse(b"<xml><a>\xff\xfe</a></xml>"), Err(XmlError::NotUtf8));
        assert!(parse(b"<xml><a>1</a>").is_err(), "truncated");
        assert!(parse(b"<xml><a>1</b></xml>").is_err(), "mismatched");
        assert!(matches!(
            parse(b"<xml><a><b>1</b></a></xml>"),
            Err(XmlError::Structure(_))
        ));
        assert!(matches!(
            parse(b"<xml><a>1</a><a>2</a></xml>"),
            Err(XmlError::Structure(_))
        ));
        assert!(matches!(parse(b"<?php x?><xml/>"), Err(XmlError::Structure(_))));
        // Empty elements count as fields: no duplicates, no more than MAX_FIELDS.
        assert!(matches!(parse(b"<xml><A>x</A><A/></xml>"), Err(XmlError::Structure(_))));
        assert!(matches!(parse(b"<xml><A/><A/></xml>"), Err(XmlError::Structure(_))));
        let many: String = (0..3000).map(|i| format!("<f{i}/>")).collect();
        assert!(matches!(
            parse(format!("<xml>{many}</xml>").as_bytes()),
            Err(XmlError::Structure(_))
        ));
        assert!(parse(b"<xml><a>x\0y</a></xml>").is_err(), "raw NUL");
        assert!(parse(b"<xml><a><![CDATA[x\0y]]></a></xml>").is_err(), "NUL in CDATA");
        assert!(parse(b"<xml><a>x&#0;y</a></xml>").is_err(), "NUL by reference");
        assert!(parse(b"").is_err());
        assert!(parse(b"not xml at all").is_err());
        assert!(matches!(
            parse(br#"<xml a="1"><b>1</b></xml>"#),
            Err(XmlError::Structure(_))
        ));
        assert!(matches!(
            parse(br#"<xml><b c='x'/></xml>"#),
            Err(XmlError::Structure(_))
        ));
    }

    /// RUSTSEC-2026-0194: a start tag with thousands of distinct attributes cost time quadratic in their number
    /// (80,000 took ~6 s). Here any attribute refuses the element before its list is walked, on the root, on a field
    /// and in a push, whatever the count — also 80,000 under a raised size cap.
    #[test]
    fn a_start_tag_with_thousands_of_attributes_is_refused_unread() {
        let attrs = |n: usize| (0..n).map(|i| format!(" a{i}=\"\"")).collect::<String>();
        for n in [1, 3_000, 6_000] {
            for body in [
                format!("<xml{}><b>1</b></xml>", attrs(n)),
                format!("<xml><b>1</b><c{}/></xml>", attrs(n)),
                format!("<xml><c{}>1</c></xml>", attrs(n)),
            ] {
                assert!(body.len() < DEFAULT_MAX_BODY, "{}", body.len());
                assert!(
                    matches!(parse(body.as_bytes()), Err(XmlError::Structure(m)) if m.contains("attributes")),
                    "{n}"
                );
                assert!(matches!(parse_push(body.as_bytes()), Err(XmlError::Structure(_))));
            }
        }
        let huge = format!("<xml{}><b>1</b></xml>", attrs(80_000));
        assert!(matches!(
            parse_with_limit(huge.as_bytes(), 2 << 20),
            Err(XmlError::Structure(m)) if m.contains("attributes")
        ));
    }
}
