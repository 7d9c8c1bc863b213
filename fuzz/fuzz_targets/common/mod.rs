//! Shared by the targets that verify signatures.

use std::sync::OnceLock;

use byreis::keys::{Signer, SigningPub};

/// One signing key for the whole run (its signatures are never valid
/// over fuzzed input; the parsers before the check are what is fuzzed).
pub fn keys() -> &'static [SigningPub] {
    static KEYS: OnceLock<Vec<SigningPub>> = OnceLock::new();
    KEYS.get_or_init(|| vec![Signer::generate("fuzz").expect("key").public])
}
