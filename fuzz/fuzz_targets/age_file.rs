//! Secrets files: byreis's own header check, then the read path (armor,
//! header, MAC, STREAM) with an identity that is not a recipient.
#![no_main]
use std::sync::OnceLock;

use byreis::keys::AgeIdentity;
use libfuzzer_sys::fuzz_target;

fn identity() -> &'static AgeIdentity {
    static ID: OnceLock<AgeIdentity> = OnceLock::new();
    ID.get_or_init(AgeIdentity::generate)
}

fuzz_target!(|data: &[u8]| {
    let _ = byreis::agefile::count_stanzas(data);
    let _ = byreis::agefile::decrypt_bytes(data, identity(), Some(0));
});
