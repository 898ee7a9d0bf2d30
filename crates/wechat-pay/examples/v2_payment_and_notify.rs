//! A WeChat Pay v2 payment with its notify, against the simulator started in this process: the order, the
//! `wx.requestPayment` parameters, the customer paying, and the notify delivered over HTTP to a handler that verifies
//! it before answering SUCCESS (an answer WeChat gets only after the payment is recorded).
//!
//! `cargo run -p wxkit-wechat-pay --example v2_payment_and_notify`

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wechat_pay::{Fen, Merchant, OrderRef, PayClient, PayKey, SignType, TradeState, TradeType, UnifiedOrder, notify};

const APP_ID: &str = "wxexample0000001";
const MCH_ID: &str = "1900000109";
const KEY: &str = "examplepaykey0123456789abcdefghi";

/// The notify URL's handler, on a bare socket to keep the example free of a web framework: read the XML, verify its
/// signature and merchant, record the payment, and only then answer SUCCESS.
async fn notify_handler(listener: tokio::net::TcpListener, merchant: Merchant, paid: Arc<Mutex<Vec<String>>>) {
    while let Ok((mut socket, _)) = listener.accept().await {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        // Read the headers, then as many body bytes as Content-Length says.
        let body = loop {
            let Ok(n) = socket.read(&mut chunk).await else {
                break None;
            };
            if n == 0 {
                break None;
            }
            buffer.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buffer).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_owned())
                    })
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if buffer.len() >= end + 4 + length {
                    break Some(buffer[end + 4..end + 4 + length].to_vec());
                }
            }
        };
        let reply = match body.map(|b| notify::parse_payment_notify(&merchant, &b)) {
            Some(Ok(n)) if n.paid => {
                // Apply exactly once (a database transaction keyed by out_trade_no), then acknowledge.
                if let Ok(mut paid) = paid.lock() {
                    paid.push(format!(
                        "{} {} fen, transaction {}",
                        n.out_trade_no, n.total_fee.0, n.transaction_id
                    ));
                }
                notify::SUCCESS_REPLY.to_owned()
            }
            Some(Ok(_)) => notify::SUCCESS_REPLY.to_owned(),
            Some(Err(e)) => notify::fail_reply(&e.to_string()),
            None => notify::fail_reply("no body"),
        };
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
            reply.len()
        );
        let _ = socket.write_all(response.as_bytes()).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = wechat_sim::SimServer::start("127.0.0.1:0", &[(APP_ID, "example-secret-0123456789abcdef0")]).await?;
    sim.handle().add_merchant(MCH_ID, KEY);
    let merchant = Merchant::new(APP_ID, MCH_ID, PayKey::new(KEY), SignType::HmacSha256);
    let pay = PayClient::new(merchant.clone(), &sim.base_url())?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let notify_url = format!("http://{}/wechat/pay/notify", listener.local_addr()?);
    let paid = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(notify_handler(listener, merchant, paid.clone()));

    // The order and what the page passes to wx.requestPayment.
    let order = UnifiedOrder::builder()
        .body("拿铁")
        .out_trade_no("EXAMPLEV2000001")
        .total_fee(Fen(1800))
        .client_ip("127.0.0.1")
        .notify_url(&notify_url)
        .trade_type(TradeType::Jsapi {
            openid: "o-alice".into(),
        })
        .attach("coupon=7")
        .build()?;
    let prepay = pay.unified_order(&order).await?;
    let params = pay.jsapi_params(&prepay.prepay_id, 1_800_000_000);
    println!(
        "wx.requestPayment: package={} signType={}",
        params.package, params.sign_type
    );

    // The customer pays; WeChat Pay delivers the notify to our handler.
    sim.handle()
        .pay_order("EXAMPLEV2000001", None, None)
        .map_err(|e| format!("{e:?}"))?;
    for _ in 0..250 {
        if paid.lock().map(|p| !p.is_empty()).unwrap_or(false) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let recorded = paid.lock().map(|p| p.clone()).unwrap_or_default();
    println!("notify verified and applied: {recorded:?}");
    if recorded.len() != 1 {
        return Err("the notify should have been delivered, verified and applied once".into());
    }
    let acknowledged = sim
        .handle()
        .notifications()
        .iter()
        .any(|n| n.out_trade_no == "EXAMPLEV2000001" && n.delivered);
    println!("WeChat Pay saw SUCCESS: {acknowledged}");

    let status = pay.order_query(&OrderRef::OutTradeNo("EXAMPLEV2000001".into())).await?;
    assert_eq!(status.trade_state, TradeState::Success);
    println!("query: {:?}", status.trade_state);
    sim.stop().await;
    Ok(())
}
