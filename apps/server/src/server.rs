//! The HTTP server of the composition root: actix-web's, assembled with wxkit's middleware stack and the login
//! sockets' upgrade hook.

use crate::configuration::Settings;
use crate::features::{self, Slices};
use crate::http;
use crate::platform::Platform;
use actix_service::IntoServiceFactory as _;
use actix_web::dev::Server;
use actix_web::middleware::{DefaultHeaders, ErrorHandlers, from_fn};
use actix_web::{App, web};
use std::net::TcpListener;

/// The HTTP server: actix-web's, assembled by hand for one addition — WebSocket upgrades leave actix's HTTP
/// dispatcher (and its two 8 KiB buffers per connection) for a lean socket of our own: thousands of login pages wait
/// idle on them (docs/benchmarks.md).
pub(crate) fn serve(
    listener: TcpListener,
    settings: &Settings,
    platform: &Platform,
    slices: &Slices,
) -> std::io::Result<Server> {
    let body_timeout = std::time::Duration::from_secs(u64::from(settings.server.body_timeout_secs));
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let cap = http::limits::connection_cap(
        settings.server.max_connections,
        http::limits::descriptor_limit(),
        settings.database.pool_size,
    );
    // actix counts connections per worker.
    let per_worker = cap.div_ceil(workers).max(1);
    let (max_connections, body_timeout_secs) = (per_worker * workers, body_timeout.as_secs());
    tracing::info!(max_connections, workers, body_timeout_secs, "connection limits");
    let proxies = platform.limits.proxies.clone();
    let (platform, slices) = (web::Data::new(platform.clone()), slices.clone());
    let scan_login = features::sockets(&slices)?;
    // One budget for HTTP connections and login sockets (see `limits::ConnectionBudget`).
    let budget = http::limits::ConnectionBudget::new(max_connections);
    let make_app = move || {
        let proxies = proxies.clone();
        App::new()
            .wrap(ErrorHandlers::new().default_handler(http::errors::wrap_in_envelope))
            .wrap(DefaultHeaders::new().add((actix_web::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff")))
            .wrap(from_fn(http::track))
            // Request ids and spans: every log line of a request (and of its database work) names it.
            .wrap(tracing_actix_web::TracingLogger::<http::RequestSpan>::new())
            .wrap_fn(move |mut req, srv| {
                use actix_web::dev::Service as _;
                http::limits::body_deadline(&mut req, body_timeout);
                let https = http::client::attach(&mut req, &proxies);
                let response = srv.call(req);
                async move { http::client::secured(response.await, https) }
            })
            .app_data(platform.clone())
            .configure(|cfg| features::data(cfg, &slices))
            .configure(http::extractor_configs)
            // The API first: the router tries routes in order, and the pages' dynamic routes cost a pattern match.
            .service(web::scope("/api/v1").configure(|cfg| features::api(cfg, &slices)))
            .configure(http::routes)
            .configure(|cfg| features::pages(cfg, &slices))
            .default_service(web::to(http::not_found))
    };
    let local = listener.local_addr()?;
    let server = actix_server::Server::build()
        .workers(workers)
        .max_concurrent_connections(per_worker)
        .shutdown_timeout(u64::from(settings.server.shutdown_timeout_secs))
        // Signals are handled by `Application::run_until_stopped`: login sockets close first, and the stop is logged.
        .disable_signals()
        .listen("wxkit", listener, move || {
            use actix_service::ServiceFactoryExt as _;
            let sockets = scan_login.clone();
            let budget = budget.clone();
            let app = make_app()
                .into_factory()
                .map_err(|err: actix_web::Error| err.error_response());
            let service = actix_http::HttpService::build()
                .keep_alive(actix_http::KeepAlive::Timeout(std::time::Duration::from_secs(5)))
                .client_request_timeout(std::time::Duration::from_secs(5))
                .client_disconnect_timeout(std::time::Duration::from_secs(1))
                .local_addr(local)
                .upgrade(actix_service::fn_service(
                    move |(req, framed): (
                        actix_http::Request,
                        actix_codec::Framed<actix_rt::net::TcpStream, actix_http::h1::Codec>,
                    )| { features::scan_login::socket::upgrade(sockets.clone(), req, framed) },
                ))
                .finish(actix_service::map_config(app, |_| actix_web::dev::AppConfig::default()))
                .tcp();
            // Each connection holds a place in the budget while served; without one (login sockets hold the rest)
            // it is closed at once.
            actix_service::apply_fn_factory(service, move |io: actix_rt::net::TcpStream, service| {
                use actix_service::Service as _;
                let served = budget.take().map(|place| (place, service.call(io)));
                async move {
                    match served {
                        Some((place, call)) => http::limits::with_connection_place(place, call).await,
                        None => Ok(()),
                    }
                }
            })
        })?
        .run();
    Ok(server)
}

/// Waits for SIGTERM or SIGINT; names the one that came.
pub(crate) async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            _ => {
                tracing::warn!("cannot listen for SIGTERM/SIGINT: stop with SIGKILL");
                std::future::pending().await
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
