//! One integration-test binary for the workspace (one link, shared harness).

mod server;
mod sim;
mod tokens;
