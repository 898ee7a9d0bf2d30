//! Bring your own HTTP client: an `App` on a `Transport` of the service's own (here a minimal HTTP/1.1 client on a
//! bare tokio socket), sending request values — against the simulator started in this process. Build it with
//! `default-features = false, features = ["client"]` and neither reqwest nor a TLS stack is compiled in.
//!
//! `cargo run -p wxkit-wechat-core --example own_transport`

use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wechat_core::request::{ApiRequest, GetTicket};
use wechat_core::{App, HttpRequest, HttpResponse, Transport, TransportError};

const APP_ID: &str = "wxexample0000001";
const SECRET: &str = "example-secret-0123456789abcdef0";

/// Plain-HTTP/1.1, one connection per request: enough to show the seam (a real service plugs in its own client).
#[derive(Debug)]
struct BareHttp;

#[wechat_core::async_trait]
impl Transport for BareHttp {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let other = |e: &str| TransportError::Other(e.to_owned().into());
        let uri = request.uri();
        let host = uri.host().ok_or_else(|| other("no host"))?;
        let addr = format!("{host}:{}", uri.port_u16().unwrap_or(80));
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| TransportError::Connect(Box::new(e)))?;
        let mut head = format!(
            "{} {} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
            request.method(),
            uri.path_and_query().map_or("/", |p| p.as_str()),
            request.body().len()
        );
        for (name, value) in request.headers() {
            head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or_default()));
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|e| TransportError::Other(Box::new(e)))?;
        stream
            .write_all(request.body())
            .await
            .map_err(|e| TransportError::Other(Box::new(e)))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .map_err(|e| TransportError::Other(Box::new(e)))?;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| other("no header end"))?;
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.lines();
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| other("no status"))?;
        let mut response = http::Response::builder().status(status);
        let mut chunked = false;
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                chunked |=
                    name.eq_ignore_ascii_case("transfer-encoding") && value.trim().eq_ignore_ascii_case("chunked");
                response = response.header(name.trim(), value.trim());
            }
        }
        let mut body = raw[split + 4..].to_vec();
        if chunked {
            body = dechunk(&body).ok_or_else(|| other("bad chunked body"))?;
        }
        response.body(body).map_err(|e| TransportError::Other(Box::new(e)))
    }
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&data[..line_end]).ok()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = wechat_sim::SimServer::start("127.0.0.1:0", &[(APP_ID, SECRET)]).await?;
    let app = App::builder()
        .app_id(APP_ID)
        .secret(SECRET)
        .base_url(&sim.base_url())
        .transport(Arc::new(BareHttp))
        .build()?;

    // A request value: what it sends is visible before anything is sent.
    let request = GetTicket::jsapi();
    let preview = request.to_http(app.client().endpoints(), Some(&wechat_core::AccessToken::new("TOKEN")))?;
    println!("would send: {} {}", preview.method(), preview.uri().path());

    // Sent with the app's access token (fetched once, through the same transport). A request value is sent as is;
    // the cached, shared ticket is `app.tokens().jsapi_ticket()`.
    let ticket = app.send(&request).await?;
    println!(
        "jsapi_ticket: {} characters, valid {} s",
        ticket.ticket.secret().len(),
        ticket.expires_in
    );
    let again = app.send(&request).await?;
    assert_eq!(again.ticket.secret(), ticket.ticket.secret());
    println!("access tokens fetched: {}", sim.handle().calls("/cgi-bin/token"));
    sim.stop().await;
    Ok(())
}
