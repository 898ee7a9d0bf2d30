//! AccessTokenManager against the simulator over real HTTP (in-memory store).

use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use wechat_core::{
    AccessTokenManager, AppId, AppSecret, Clock, Endpoints, Error, MemoryTokenStore, StoreError, StoredToken,
    TokenKind, TokenManagerOptions, TokenMode, TokenStore, WechatClient,
};
use wechat_sim::{Fault, SimServer};
use wxkit_testkit::{TEST_APP_ID, TEST_APP_SECRET, spawn_sim};

fn client(sim: &SimServer) -> WechatClient {
    WechatClient::with_default_transport()
        .unwrap()
        .with_endpoints(Endpoints::single(&sim.base_url()).unwrap())
}

fn manager(sim: &SimServer, store: Arc<dyn TokenStore>) -> AccessTokenManager {
    AccessTokenManager::new(
        client(sim),
        AppId::new(TEST_APP_ID),
        AppSecret::new(TEST_APP_SECRET),
        store,
    )
}

fn fault(path: &str, count: u32) -> Fault {
    Fault {
        path: path.into(),
        count,
        errcode: None,
        errmsg: None,
        http_status: None,
        delay_ms: None,
    }
}

/// A store that counts invalidations, around the in-memory one.
#[derive(Debug, Default)]
struct CountingStore {
    inner: MemoryTokenStore,
    invalidations: AtomicUsize,
}

#[async_trait]
impl TokenStore for CountingStore {
    async fn load(&self, app_id: &AppId, kind: TokenKind) -> Result<Option<StoredToken>, StoreError> {
        self.inner.load(app_id, kind).await
    }
    async fn save(&self, app_id: &AppId, kind: TokenKind, token: &StoredToken) -> Result<(), StoreError> {
        self.inner.save(app_id, kind, token).await
    }
    async fn invalidate_if(&self, app_id: &AppId, kind: TokenKind, failed: &str) -> Result<bool, StoreError> {
        self.invalidations.fetch_add(1, Ordering::SeqCst);
        self.inner.invalidate_if(app_id, kind, failed).await
    }
    async fn try_lock(&self, a: &AppId, k: TokenKind, h: &str, now: i64, until: i64) -> Result<bool, StoreError> {
        self.inner.try_lock(a, k, h, now, until).await
    }
    async fn unlock(&self, a: &AppId, k: TokenKind, h: &str) -> Result<(), StoreError> {
        self.inner.unlock(a, k, h).await
    }
}

#[derive(Debug)]
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_callers_on_a_cold_cache_cause_one_upstream_call() {
    let sim = spawn_sim().await;
    // Slow the upstream a little so that all callers really overlap the refresh.
    sim.handle().inject(Fault {
        delay_ms: Some(200),
        ..fault("/cgi-bin/token", 1)
    });
    let tokens = manager(&sim, Arc::new(MemoryTokenStore::new()));

    let calls: Vec<_> = (0..1000)
        .map(|_| {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.access_token().await.map(|t| t.secret().to_owned()) })
        })
        .collect();
    let mut values = std::collections::HashSet::new();
    for call in calls {
        values.insert(call.await.unwrap().unwrap());
    }

    assert_eq!(sim.handle().calls("/cgi-bin/token"), 1);
    assert_eq!(values.len(), 1, "every caller got the same token");
}

#[tokio::test]
async fn a_rejected_token_is_invalidated_once_refreshed_once_and_the_call_succeeds() {
    let sim = spawn_sim().await;
    let store = Arc::new(CountingStore::default());
    let tokens = manager(&sim, store.clone());
    let first = tokens.access_token().await.unwrap().secret().to_owned();
    sim.handle().inject(Fault {
        errcode: Some(40001),
        ..fault("/cgi-bin/ticket/getticket", 1)
    });

    let ticket = tokens.jsapi_ticket().await.unwrap();

    assert!(!ticket.secret().is_empty());
    assert_eq!(store.invalidations.load(Ordering::SeqCst), 1, "one invalidate");
    assert_eq!(sim.handle().calls("/cgi-bin/token"), 2, "one refresh");
    assert_eq!(sim.handle().calls("/cgi-bin/ticket/getticket"), 2, "one retry");
    assert_ne!(tokens.access_token().await.unwrap().secret(), first);
}

#[tokio::test]
async fn a_token_rejected_twice_is_not_refreshed_in_a_loop() {
    let sim = spawn_sim().await;
    let tokens = manager(&sim, Arc::new(MemoryTokenStore::new()));
    sim.handle().inject(Fault {
        errcode: Some(42001),
        ..fault("/cgi-bin/ticket/getticket", 5)
    });

    let err = tokens.wx_card_ticket().await.unwrap_err();

    assert!(matches!(err, Error::TokenInvalid { code: 42001, .. }), "{err:?}");
    assert_eq!(sim.handle().calls("/cgi-bin/token"), 2);
    assert_eq!(sim.handle().calls("/cgi-bin/ticket/getticket"), 2);
}

#[tokio::test]
async fn two_system_errors_are_retried_until_success() {
    let sim = spawn_sim().await;
    sim.handle().inject(Fault {
        errcode: Some(-1),
        ..fault("/cgi-bin/token", 2)
    });
    let tokens = manager(&sim, Arc::new(MemoryTokenStore::new()));

    tokens.access_token().await.unwrap();

    assert_eq!(sim.handle().calls("/cgi-bin/token"), 3);
}

#[tokio::test]
async fn http_5xx_is_retried_a_bounded_number_of_times() {
    let sim = spawn_sim().await;
    sim.handle().inject(Fault {
        http_status: Some(503),
        ..fault("/cgi-bin/token", 10)
    });
    let tokens = manager(&sim, Arc::new(MemoryTokenStore::new()));

    let err = tokens.access_token().await.unwrap_err();

    assert!(matches!(err, Error::HttpStatus { status: 503 }), "{err:?}");
    assert_eq!(sim.handle().calls("/cgi-bin/token"), 3, "default policy: 3 attempts");
}

#[tokio::test]
async fn a_slow_upstream_times_out_and_is_retried() {
    let sim = spawn_sim().await;
    sim.handle().inject(Fault {
        delay_ms: Some(1500),
        ..fault("/cgi-bin/token", 1)
    });
    let transport = wechat_core::ReqwestTransport::with_timeout(std::time::Duration::from_millis(500)).unwrap();
    let client = WechatClient::new(Arc::new(transport)).with_endpoints(Endpoints::single(&sim.base_url()).unwrap());
    let tokens = AccessTokenManager::new(
        client,
        AppId::new(TEST_APP_ID),
        AppSecret::new(TEST_APP_SECRET),
        Arc::new(MemoryTokenStore::new()),
    );

    tokens.access_token().await.unwrap();

    assert_eq!(sim.handle().calls("/cgi-bin/token"), 2);
}

#[tokio::test]
async fn a_wrong_secret_is_a_typed_error_and_is_not_retried() {
    let sim = spawn_sim().await;
    let tokens = AccessTokenManager::new(
        client(&sim),
        AppId::new(TEST_APP_ID),
        AppSecret::new("wrong-secret"),
        Arc::new(MemoryTokenStore::new()),
    );

    let err = tokens.access_token().await.unwrap_err();

    assert!(matches!(err, Error::Config { code: 40125, .. }), "{err:?}");
    assert!(!err.to_string().contains("wrong-secret"));
    assert_eq!(sim.handle().calls("/cgi-bin/token"), 1);
}

#[tokio::test]
async fn a_wrong_appid_is_a_typed_error_and_is_not_retried() {
    let sim = spawn_sim().await;
    let tokens = AccessTokenManager::new(
        client(&sim),
        AppId::new("wxunknown"),
        AppSecret::new(TEST_APP_SECRET),
        Arc::new(MemoryTokenStore::new()),
    );

    let err = tokens.access_token().await.unwrap_err();

    assert!(matches!(err, Error::Config { code: 40013, .. }), "{err:?}");
    assert_eq!(sim.handle().calls("/cgi-bin/token"), 1);
}

#[tokio::test]
async fn a_caller_with_a_stale_token_does_not_invalidate_the_newer_one() {
    let sim = spawn_sim().await;
    let store = Arc::new(MemoryTokenStore::new());
    let a = manager(&sim, store.clone());
    let b = manager(&sim, store.clone());
    let stale = a.access_token().await.unwrap().secret().to_owned();
    // Another instance replaced the token meanwhile.
    assert!(b.invalidate(TokenKind::AccessToken, &stale).await.unwrap());
    let newer = b.access_token().await.unwrap().secret().to_owned();
    assert_ne!(stale, newer);

    let removed = a.invalidate(TokenKind::AccessToken, &stale).await.unwrap();

    assert!(!removed, "the store holds a newer token: keep it");
    let held = store
        .load(&AppId::new(TEST_APP_ID), TokenKind::AccessToken)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.value, newer);
    assert_eq!(a.access_token().await.unwrap().secret(), newer);
    assert_eq!(sim.handle().calls("/cgi-bin/token"), 2);
}

#[tokio::test]
async fn tickets_are_cached_per_kind() {
    let sim = spawn_sim().await;
    let tokens = manager(&sim, Arc::new(MemoryTokenStore::new()));

    let jsapi1 = tokens.jsapi_ticket().await.unwrap();
    let jsapi2 = tokens.jsapi_ticket().await.unwrap();
    let card = tokens.wx_card_ticket().await.unwrap();

    assert_eq!(jsapi1.secret(), jsapi2.secret());
    assert_ne!(jsapi1.secret(), card.secret());
    assert_eq!(sim.handle().calls("/cgi-bin/ticket/getticket"), 2);
    assert_eq!(sim.handle().calls("/cgi-bin/token"), 1);
}

#[tokio::test]
async fn the_token_is_refreshed_ahead_of_expiry_and_expired_tokens_are_replaced() {
    let sim = spawn_sim().await;
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let clock = Arc::new(TestClock(AtomicI64::new(start)));
    let tokens = manager(&sim, Arc::new(MemoryTokenStore::new())).with_clock(clock.clone());
    let first = tokens.access_token().await.unwrap().secret().to_owned();

    // 100 minutes later: still more than 5 minutes left, cached.
    clock.0.fetch_add(6000 * 1000, Ordering::SeqCst);
    assert_eq!(tokens.access_token().await.unwrap().secret(), first);
    assert_eq!(sim.handle().calls("/cgi-bin/token"), 1);

    // 4 minutes before expiry: refreshed ahead.
    clock.0.fetch_add((7200 - 6000 - 240) * 1000, Ordering::SeqCst);
    let second = tokens.access_token().await.unwrap().secret().to_owned();
    assert_ne!(second, first);
    assert_eq!(sim.handle().calls("/cgi-bin/token"), 2);
}

#[tokio::test]
async fn an_expired_token_rejected_by_wechat_is_replaced_transparently() {
    let sim = spawn_sim().await;
    let tokens = manager(&sim, Arc::new(MemoryTokenStore::new()));
    tokens.access_token().await.unwrap();
    // WeChat's clock runs past expiry while ours thinks the token is fine: WeChat answers 42001.
    sim.handle().advance_clock(7201);

    let ticket = tokens.jsapi_ticket().await;

    assert!(ticket.is_ok(), "{ticket:?}");
    assert_eq!(sim.handle().calls("/cgi-bin/token"), 2);
}

#[tokio::test]
async fn stable_token_mode_shares_one_token_between_independent_fetchers() {
    let sim = spawn_sim().await;
    let options = || TokenManagerOptions::default().mode(TokenMode::Stable);
    let make = || {
        AccessTokenManager::with_options(
            client(&sim),
            AppId::new(TEST_APP_ID),
            AppSecret::new(TEST_APP_SECRET),
            Arc::new(MemoryTokenStore::new()),
            options(),
        )
    };
    let (a, b) = (make(), make());

    let ta = a.access_token().await.unwrap();
    let tb = b.access_token().await.unwrap();

    assert_eq!(ta.secret(), tb.secret());
    assert_eq!(sim.handle().calls("/cgi-bin/stable_token"), 2);
    assert_eq!(sim.handle().calls("/cgi-bin/token"), 0);
    // And it works on an API.
    assert!(a.jsapi_ticket().await.is_ok());
}
