#![forbid(unsafe_code)]
//! byreis on GitHub: the REST API (octocrab on a private tokio runtime) and
//! pull requests as the place where proposals, submissions and access
//! requests are discussed (ADR 0013, 0020). Called by the CLI only after
//! the core returned, with what the core drafted.

// The core's modules under their usual `crate::` paths.
use byreis_core::*;

pub mod github;
pub mod pulls;
