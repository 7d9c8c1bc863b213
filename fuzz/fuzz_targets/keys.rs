//! Public keys from untrusted documents (requests, manifests, rosters) and
//! identity files.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(r) = byreis::keys::AgeRecipient::parse(text) {
            let _ = r.fingerprint();
        }
        let _ = byreis::keys::SigningPub::parse(text);
        let _ = byreis::keys::AgeIdentity::parse(text, "fuzz");
    }
});
