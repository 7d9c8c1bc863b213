//! The audit log: line splitting, signature field, entry JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod common;
use common::keys;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = byreis::audit::verify_log(text, keys(), "p", None);
        let _ = byreis::audit::verify_log(text, keys(), "p", Some("sha256:00"));
        if let Ok(entry) = serde_json::from_str::<byreis::audit::Entry>(text) {
            let _ = entry.details.value();
        }
    }
});
