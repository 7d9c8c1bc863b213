#![forbid(unsafe_code)]
//! byreis: age-encrypted secrets in git, with a signed, counted manifest.
//!
//! Three crates (README "Layout"): `byreis-core` (everything that decides
//! and verifies), `byreis-github` (the GitHub edge) and this one, the
//! command line with the other edges: the user's `git` for remotes and the
//! editor. Every module is re-exported here under its usual path.

pub use byreis_core::*;
pub use byreis_github::{github, pulls};

pub mod cli;
pub mod editor;
pub mod remote;
