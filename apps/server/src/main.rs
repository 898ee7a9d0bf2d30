use clap::Parser;
use std::process::ExitCode;

// mimalloc instead of glibc malloc: glibc's malloc/free were about 18 % of a CPU profile of the POS hot path
// (docs/benchmarks.md); mimalloc's thread-local heaps make those calls cheaper.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before any thread or connection: OpenSSL without its exit-time cleanup (see `db::init_tls`).
    wxkit::db::init_tls();
    // .env first, so that it feeds both clap's env fallbacks and the settings.
    let _ = dotenvy::dotenv();
    let cli = wxkit::cli::Cli::parse();
    let format = cli
        .log_format()
        .and_then(wxkit::telemetry::LogFormat::parse)
        .unwrap_or_default();
    wxkit::telemetry::init_with("info,actix_server=warn", format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(wxkit::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
