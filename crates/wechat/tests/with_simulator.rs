//! How an embedding service tests its WeChat integration: the simulator started inside the test process, the
//! product handle pointed at it, WeChat's behaviour (codes, payments, faults) driven through the simulator's handle.
//! `docs/testing-with-wechat-sim.md` walks through this file.

use wechat::wechat_message::send::{Data, TemplateMessage};
use wechat::{Error, OfficialAccount};
use wechat_sim::{Fault, SimServer};

const APP_ID: &str = "wxguideexample001";
const SECRET: &str = "guide-secret-0123456789abcdef01";

/// The service's own code under test: log the user in with the redirect's code and greet them.
async fn login_and_greet(oa: &OfficialAccount, code: &str) -> Result<String, Box<dyn std::error::Error>> {
    let login = oa.oauth().exchange_code(code).await?;
    let message = TemplateMessage::new(login.openid.as_str(), "tpl-welcome", Data::new().with("thing1", "欢迎"))?;
    oa.messages().send_template(&message).await?;
    Ok(login.openid.into_inner())
}

async fn start() -> (SimServer, OfficialAccount) {
    let sim = SimServer::start("127.0.0.1:0", &[(APP_ID, SECRET)])
        .await
        .unwrap_or_else(|e| panic!("the simulator did not start: {e}"));
    let oa = OfficialAccount::builder()
        .app_id(APP_ID)
        .secret(SECRET)
        .base_url(&sim.base_url())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    sim.handle().add_template(APP_ID, "tpl-welcome", &["thing1"]);
    (sim, oa)
}

fn fault(path: &str, errcode: Option<i64>, http_status: Option<u16>) -> Fault {
    Fault {
        path: path.into(),
        count: 1,
        errcode,
        errmsg: None,
        http_status,
        delay_ms: None,
    }
}

#[tokio::test]
async fn a_follower_logs_in_and_is_greeted_once() {
    let (sim, oa) = start().await;
    sim.handle().follow(APP_ID, "o-alice");
    let code = sim
        .handle()
        .issue_oauth_code(APP_ID, "o-alice", "snsapi_base")
        .unwrap_or_default();
    let openid = login_and_greet(&oa, &code).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(openid, "o-alice");
    let sent = sim.handle().sent_messages();
    assert_eq!(sent.len(), 1, "{sent:?}");
    // The same code again is what a refreshed callback page sends: WeChat refuses it (40163), typed.
    let again = oa.oauth().exchange_code(&code).await.unwrap_err();
    assert_eq!(again.errcode(), Some(40163));
    sim.stop().await;
}

#[tokio::test]
async fn a_user_who_does_not_follow_is_refused_with_the_real_errcode() {
    let (sim, oa) = start().await;
    let code = sim
        .handle()
        .issue_oauth_code(APP_ID, "o-stranger", "snsapi_base")
        .unwrap_or_default();
    let e = login_and_greet(&oa, &code).await.unwrap_err();
    let refusal = e
        .downcast_ref::<wechat::wechat_message::send::Error>()
        .and_then(|e| e.refusal());
    assert_eq!(
        refusal,
        Some(wechat::wechat_message::send::Refusal::NotFollowing),
        "{e}"
    );
    sim.stop().await;
}

#[tokio::test]
async fn reads_are_retried_through_a_busy_wechat_and_sends_are_never_resent() {
    let (sim, oa) = start().await;
    // WeChat is busy (-1) once on the ticket read: retried, the page still gets its config.
    sim.handle().inject(fault("/cgi-bin/ticket/getticket", Some(-1), None));
    assert!(oa.jssdk_config("https://shop.example/", 1_800_000_000).await.is_ok());
    assert_eq!(sim.handle().calls("/cgi-bin/ticket/getticket"), 2);
    // A template send answered 500 may have been delivered: it is reported, not sent a second time.
    sim.handle().follow(APP_ID, "o-bob");
    sim.handle()
        .inject(fault("/cgi-bin/message/template/send", None, Some(500)));
    let message = TemplateMessage::new("o-bob", "tpl-welcome", Data::new().with("thing1", "欢迎"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(oa.messages().send_template(&message).await.is_err());
    assert_eq!(sim.handle().calls("/cgi-bin/message/template/send"), 1);
    sim.stop().await;
}

#[tokio::test]
async fn an_expired_token_is_renewed_once_and_the_call_made_again() {
    let (sim, oa) = start().await;
    sim.handle().follow(APP_ID, "o-carol");
    let message = TemplateMessage::new("o-carol", "tpl-welcome", Data::new().with("thing1", "欢迎"))
        .unwrap_or_else(|e| panic!("{e}"));
    oa.messages()
        .send_template(&message)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Two hours later WeChat has expired the token (42001): the handle renews it once and sends.
    sim.handle().advance_clock(7200 + 1);
    oa.messages()
        .send_template(&message)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sim.handle().calls("/cgi-bin/token"), 2);
    assert!(
        matches!(oa.push(), Err(Error::NotConfigured { .. })),
        "no push token configured here"
    );
    sim.stop().await;
}
