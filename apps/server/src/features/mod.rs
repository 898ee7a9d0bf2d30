//! Capabilities, one folder each: its use cases (service) and, as the layout moves over, its routes and queries.
//! Every channel — the HTTP API, the CLI — calls the same service, so a rule exists once.

pub mod merchants;
