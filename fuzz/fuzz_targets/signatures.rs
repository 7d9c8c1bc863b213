//! SSHSIG signatures: armored (manifest, record, roster, approvals,
//! decisions) and base64 (audit lines), and the multi-block splitter.
#![no_main]
use byreis::sshsig::{self, Namespace};
use libfuzzer_sys::fuzz_target;

mod common;
use common::keys;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for block in sshsig::split_armored(text) {
            let _ = sshsig::verify_armored(&block, Namespace::Manifest, b"m", keys());
        }
        let _ = sshsig::verify_armored(text, Namespace::Record, b"m", keys());
        let _ = sshsig::verify_base64(text, Namespace::Audit, b"m", keys());
        let _ = byreis::verify::approvers(keys(), b"m", text);
    }
});
