//! byreis's integration tests, one binary (one link of git2, octocrab and
//! the library instead of one per file): each file of this folder is a
//! module. Run one with `cargo test --test it MODULE::` (for example
//! `cargo test --test it crash::`).
// Tests print what they found.
#![allow(clippy::disallowed_macros)]

mod common;

mod admin;
mod approvals;
mod argocd;
mod auditing;
mod boundary;
mod canary;
mod cctv;
mod crash;
mod edit_signals;
mod everyday;
mod exec_files;
mod export;
mod exposure;
mod github;
mod github_action;
mod import;
mod interop;
mod kustomize;
mod race;
mod registry_ci;
mod requests;
mod rotate;
mod store;
mod submit;
mod tamper;
mod trust;
