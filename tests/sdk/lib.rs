//! Nothing here: the tests are in `main.rs` (`cargo test -p wxkit-sdk-tests`).
