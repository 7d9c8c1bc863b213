#![forbid(unsafe_code)]
//! byreis's core: keys, formats, the local repositories, verification, the
//! reads and the one write route (README "Layout"; ADR 0019, 0020). It holds
//! no clap, octocrab, tokio or dialoguer, spawns no process, prints nothing
//! and reads no environment variable (beyond the test hooks): what it has
//! to say is returned or queued in [`notice`], and it reaches a git remote
//! only through the [`transport`] port the CLI installs.

pub mod agefile;
pub mod agent;
pub mod audit;
pub mod diag;
pub mod diff;
pub mod doctor;
pub mod documents;
pub mod dotenv;
pub mod exec;
pub mod export;
pub mod exposure;
pub mod failpoint;
pub mod git;
pub mod history;
pub mod import;
pub mod keys;
pub mod names;
pub mod notice;
pub mod par;
pub mod proposal;
pub mod registry;
pub mod request;
pub mod request_doc;
pub mod roster_approval;
pub mod rotation;
pub mod secret;
pub mod signed;
pub mod sshsig;
pub mod store;
pub mod submission;
pub mod timing;
pub mod transport;
pub mod trust;
pub mod value_age;
pub mod verify;
pub mod yaml;
