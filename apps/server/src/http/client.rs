//! Who the client is behind a reverse proxy (`server.trusted_proxies`).
//!
//! WeChat requires HTTPS on a registered domain, so nearly every deployment has nginx or a cloud load balancer in
//! front: the TCP peer is then the proxy, and per-address limits, logs and audit rows would treat all customers as
//! one. Only when the peer is a trusted proxy is the client taken from `Forwarded` (RFC 7239) or `X-Forwarded-For`
//! — the right-most address that is not itself a trusted proxy, because every proxy appends what it saw and only
//! the hops we trust can be believed — and the scheme from `X-Forwarded-Proto` (or `Forwarded: proto=`). From any
//! other peer those headers are ignored: a client cannot choose its own address.

use actix_web::HttpMessage as _;
use actix_web::http::header::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

/// The proxies whose forwarding headers are believed (addresses or CIDR blocks).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// The client of a request, as far as it can be known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    /// The client's address (the peer's when no trusted proxy forwarded the request).
    pub ip: Option<IpAddr>,
    /// Whether the client reached the edge over HTTPS (a trusted proxy said so with `X-Forwarded-Proto: https`).
    pub https: bool,
}

impl TrustedProxies {
    /// Parses `server.trusted_proxies`: comma-separated addresses or CIDRs, `127.0.0.1/32,10.0.0.0/8,::1`.
    ///
    /// ```
    /// use wxkit::http::client::TrustedProxies;
    /// let p = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").unwrap();
    /// assert!(p.contains("10.1.2.3".parse().unwrap()));
    /// assert!(!p.contains("192.0.2.1".parse().unwrap()));
    /// assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
    /// ```
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => {
                        return Err(format!(
                            "{item:?} is not an address or CIDR block (e.g. 127.0.0.1/32, 10.0.0.0/8, ::1)"
                        ));
                    }
                },
            };
            nets.push(net.trunc());
        }
        Ok(TrustedProxies(nets))
    }

    /// Whether no proxy is trusted (the default).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a trusted proxy (an IPv4-mapped IPv6 peer matches its IPv4 form).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request that arrived from `peer` with `headers`.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Client {
        let direct = Client {
            ip: peer.map(canonical),
            https: false,
        };
        let Some(peer) = direct.ip else {
            return direct;
        };
        if !self.contains(peer) {
            return direct;
        }
        let (hops, protos) = forwarded_hops(headers);
        let mut client = peer;
        // Walk from the nearest hop outwards while the hop we stand on is trusted.
        let mut chosen = None;
        for (i, hop) in hops.iter().enumerate().rev() {
            match hop {
                Some(ip) => {
                    client = canonical(*ip);
                    chosen = Some(i);
                    if !self.contains(client) {
                        break;
                    }
                }
                // `unknown` or an obfuscated name: the last address known is as far as anyone can see.
                None => break,
            }
        }
        let proto = match (&protos, chosen) {
            (Protos::Forwarded(list), Some(i)) => list.get(i).cloned().flatten(),
            (Protos::Header(p), _) => p.clone(),
            _ => None,
        };
        Client {
            ip: Some(client),
            https: proto.is_some_and(|p| p.eq_ignore_ascii_case("https")),
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a dual-stack socket reports) as its IPv4 form.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

enum Protos {
    /// `proto=` of each `Forwarded` element, by position.
    Forwarded(Vec<Option<String>>),
    /// The right-most `X-Forwarded-Proto` value.
    Header(Option<String>),
}

/// The forwarded-for chain, left (the original client) to right (the hop nearest us): `Forwarded` when present,
/// else `X-Forwarded-For`. `None` for an element that names no address.
fn forwarded_hops(headers: &HeaderMap) -> (Vec<Option<IpAddr>>, Protos) {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let forwarded = values("forwarded");
    if !forwarded.is_empty() {
        let mut hops = Vec::new();
        let mut protos = Vec::new();
        for element in forwarded {
            let mut hop = None;
            let mut proto = None;
            for pair in element.split(';') {
                let Some((k, v)) = pair.split_once('=') else { continue };
                let v = v.trim().trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    "for" => hop = node_address(v),
                    "proto" => proto = Some(v.to_owned()),
                    _ => {}
                }
            }
            hops.push(hop);
            protos.push(proto);
        }
        return (hops, Protos::Forwarded(protos));
    }
    let hops = values("x-forwarded-for").iter().map(|v| node_address(v)).collect();
    let proto = values("x-forwarded-proto").pop();
    (hops, Protos::Header(proto))
}

/// The address of a node: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711`, `2001:db8::1`.
fn node_address(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    node.rsplit_once(':').and_then(|(host, _)| host.parse().ok())
}

/// The client of a request: set by the server's middleware from the trusted proxies; the peer otherwise.
pub fn client(req: &actix_web::HttpRequest) -> Client {
    req.extensions().get::<Client>().copied().unwrap_or(Client {
        ip: req.peer_addr().map(|a| canonical(a.ip())),
        https: false,
    })
}

/// The client's address of a request (see [`client`]).
pub fn client_ip(req: &actix_web::HttpRequest) -> Option<IpAddr> {
    client(req).ip
}

/// Works out the client of `req` and keeps it in the request's extensions (for [`client`]); returns whether the
/// client came over HTTPS.
pub fn attach(req: &mut actix_web::dev::ServiceRequest, proxies: &TrustedProxies) -> bool {
    let client = proxies.client(req.peer_addr().map(|a| a.ip()), req.headers());
    req.extensions_mut().insert(client);
    client.https
}

/// The response, with its cookies marked `Secure` when the client came over HTTPS (see [`attach`]).
pub fn secured<B>(
    response: Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    https: bool,
) -> Result<actix_web::dev::ServiceResponse<B>, actix_web::Error> {
    let mut response = response?;
    if https {
        secure_cookies(response.headers_mut());
    }
    Ok(response)
}

/// Marks every cookie of a response `Secure` (the client reached the edge over HTTPS, though this hop is plain).
pub fn secure_cookies(headers: &mut HeaderMap) {
    use actix_web::http::header::{HeaderValue, SET_COOKIE};
    let cookies: Vec<HeaderValue> = headers.get_all(SET_COOKIE).cloned().collect();
    if cookies.is_empty() {
        return;
    }
    headers.remove(SET_COOKIE);
    for cookie in cookies {
        let secured = match cookie.to_str() {
            Ok(c) if !c.to_ascii_lowercase().contains("; secure") => {
                HeaderValue::from_str(&format!("{c}; Secure")).unwrap_or(cookie)
            }
            _ => cookie,
        };
        headers.append(SET_COOKIE, secured);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address_or_scheme() {
        let none = TrustedProxies::default();
        let spoof = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https")]);
        let c = none.client(Some(ip("192.0.2.9")), &spoof);
        assert_eq!(
            c,
            Client {
                ip: Some(ip("192.0.2.9")),
                https: false
            }
        );
        let some = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(some.client(Some(ip("192.0.2.9")), &spoof).ip, Some(ip("192.0.2.9")));
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let p = TrustedProxies::parse("127.0.0.1/32,10.0.0.0/8").unwrap();
        // The client put 6.6.6.6 in its own header; nginx appended the real peer 203.0.113.7; an inner proxy
        // 10.0.0.2 appended nothing new but forwarded.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.7"),
            ("x-forwarded-for", "10.0.0.2"),
            ("x-forwarded-proto", "https"),
        ]);
        let c = p.client(Some(ip("127.0.0.1")), &h);
        assert_eq!(
            c,
            Client {
                ip: Some(ip("203.0.113.7")),
                https: true
            }
        );
        // Every hop trusted: the left-most.
        let h = headers(&[("x-forwarded-for", "10.0.0.3")]);
        assert_eq!(p.client(Some(ip("::ffff:127.0.0.1")), &h).ip, Some(ip("10.0.0.3")));
        // No header at all: the proxy itself.
        assert_eq!(
            p.client(Some(ip("127.0.0.1")), &HeaderMap::new()).ip,
            Some(ip("127.0.0.1"))
        );
    }

    #[test]
    fn forwarded_is_read_with_ports_brackets_and_unknowns() {
        let p = TrustedProxies::parse("127.0.0.1").unwrap();
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6;proto=http, for=\"[2001:db8::7]:4711\";proto=https",
        )]);
        assert_eq!(
            p.client(Some(ip("127.0.0.1")), &h),
            Client {
                ip: Some(ip("2001:db8::7")),
                https: true
            }
        );
        let h = headers(&[("forwarded", "for=unknown"), ("x-forwarded-for", "6.6.6.6")]);
        assert_eq!(p.client(Some(ip("127.0.0.1")), &h).ip, Some(ip("127.0.0.1")));
        assert_eq!(node_address("192.0.2.1:80"), Some(ip("192.0.2.1")));
        assert_eq!(node_address("_hidden"), None);
    }

    #[test]
    fn bad_lists_are_refused_by_name() {
        let e = TrustedProxies::parse("10.0.0.0/8, proxy.local").unwrap_err();
        assert!(e.contains("proxy.local"), "{e}");
        assert!(TrustedProxies::parse("").unwrap().is_empty());
    }

    #[test]
    fn cookies_become_secure_once() {
        let mut h = headers(&[("set-cookie", "a=1; Path=/"), ("set-cookie", "b=2; Secure")]);
        secure_cookies(&mut h);
        let all: Vec<_> = h
            .get_all("set-cookie")
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(all, vec!["a=1; Path=/; Secure".to_owned(), "b=2; Secure".to_owned()]);
    }
}
