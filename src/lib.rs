#![forbid(unsafe_code)]
//! byreis: age-encrypted secrets in git, with a signed, counted manifest.

pub mod agefile;
pub mod agent;
pub mod audit;
pub mod cli;
pub mod diag;
pub mod diff;
pub mod doctor;
pub mod documents;
pub mod editor;
pub mod exec;
pub mod export;
pub mod exposure;
pub mod failpoint;
pub mod git;
pub mod github;
pub mod history;
pub mod keys;
pub mod names;
pub mod par;
pub mod proposal;
pub mod pulls;
pub mod registry;
pub mod remote;
pub mod request;
pub mod roster_approval;
pub mod rotation;
pub mod secret;
pub mod signed;
pub mod sshsig;
pub mod store;
pub mod submission;
pub mod timing;
pub mod trust;
pub mod verify;
pub mod yaml;
