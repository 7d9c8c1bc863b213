//! Signed documents: exact bytes plus detached SSHSIG signatures.
//!
//! A [`Verified<T>`] can only be made here, by checking the signature over
//! the bytes on disk and then parsing those same bytes. Nothing byreis
//! trusts is ever re-serialized before it is verified.

use sha2::{Digest, Sha256};

use crate::keys::SigningPub;
use crate::sshsig::{self, Namespace, SigError};

#[derive(Debug, thiserror::Error)]
pub enum SignedError {
    #[error("{0}")]
    Sig(#[from] SigError),
    #[error("no signature found")]
    NoSignature,
    #[error("only {got} of the {need} required distinct admin signatures verify")]
    Threshold { got: usize, need: usize },
    #[error("signed content is not valid: {0}")]
    Content(String),
}

/// A document whose signature verified and which was parsed from the
/// verified bytes. The only constructors are in this module.
#[derive(Debug, Clone)]
pub struct Verified<T> {
    value: T,
    bytes: Vec<u8>,
    /// Indices, in the key list given to the verifier, of the keys whose
    /// signatures verified (each key once).
    signers: Vec<usize>,
}

impl<T> Verified<T> {
    pub fn value(&self) -> &T {
        &self.value
    }
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    pub fn sha256(&self) -> String {
        sha256_hex(&self.bytes)
    }
    pub fn signers(&self) -> &[usize] {
        &self.signers
    }
}

impl<T> std::ops::Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// 64 bytes from exactly 128 lowercase hex digits (a SHA-512), or `None`.
pub fn unhex64(s: &str) -> Option<[u8; 64]> {
    if s.len() != 128 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 64];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Verifies that at least `threshold` distinct keys of `allowed` signed
/// `bytes` in namespace `ns`, then parses the bytes with `parse`. Blocks by
/// keys outside `allowed` do not count; any block that is malformed, in
/// another namespace or fails to verify is an error.
pub fn verify<T>(
    bytes: &[u8],
    sig_text: &str,
    ns: Namespace,
    allowed: &[SigningPub],
    threshold: usize,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Verified<T>, SignedError> {
    let blocks = sshsig::split_armored(sig_text);
    if blocks.is_empty() {
        return Err(SignedError::NoSignature);
    }
    let mut signers = Vec::new();
    let mut first_err = None;
    for block in &blocks {
        match sshsig::verify_armored(block, ns, bytes, allowed) {
            Ok(i) if !signers.contains(&i) => signers.push(i),
            Ok(_) => {}
            // A block by a key outside `allowed` may be a valid signature by
            // someone this check does not count (a roster change carries
            // signatures of both the old and the new admins).
            Err(e @ SigError::UnknownSigner(_)) => {
                first_err.get_or_insert(e);
            }
            // A block that is malformed, in another namespace, or does not
            // verify under an allowed key is never ignored.
            Err(e) => return Err(SignedError::Sig(e)),
        }
    }
    let need = threshold.max(1);
    if signers.len() < need {
        return Err(match (first_err, signers.len()) {
            (Some(e), 0) => SignedError::Sig(e),
            _ => SignedError::Threshold {
                got: signers.len(),
                need,
            },
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| SignedError::Content("not UTF-8".into()))?;
    let value = parse(text).map_err(SignedError::Content)?;
    Ok(Verified {
        value,
        bytes: bytes.to_vec(),
        signers,
    })
}

/// Parses a signed YAML document (already verified) into `T`, with the same
/// strictness as untrusted input.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    crate::yaml::from_untrusted_limit(text, crate::yaml::MAX_SIGNED_BYTES)
        .map_err(|e| e.to_string())
}

/// Parses YAML whose signature has already verified (an admin wrote it):
/// size-limited, deserialized straight into `T` (unknown or duplicate
/// fields are errors), without the untrusted-input event pre-check.
pub fn parse_verified_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    if text.len() > crate::yaml::MAX_SIGNED_BYTES {
        return Err(format!(
            "larger than {} bytes",
            crate::yaml::MAX_SIGNED_BYTES
        ));
    }
    serde_yaml::from_str(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Signer;

    #[test]
    fn threshold_counts_each_key_once() {
        let a = Signer::generate("a").unwrap();
        let b = Signer::generate("b").unwrap();
        let keys = [a.public.clone(), b.public.clone()];
        let msg = b"k: 1\n";
        let sa = sshsig::sign_armored(&a, Namespace::Roster, msg).unwrap();
        let sb = sshsig::sign_armored(&b, Namespace::Roster, msg).unwrap();
        let p = |t: &str| parse_yaml::<serde_yaml::Value>(t);
        assert!(verify(msg, &sa, Namespace::Roster, &keys, 1, p).is_ok());
        let twice = format!("{sa}{sa}");
        assert!(matches!(
            verify(msg, &twice, Namespace::Roster, &keys, 2, p),
            Err(SignedError::Threshold { got: 1, need: 2 })
        ));
        let both = format!("{sa}{sb}");
        assert_eq!(
            verify(msg, &both, Namespace::Roster, &keys, 2, p)
                .unwrap()
                .signers(),
            &[0, 1]
        );
        assert!(verify(msg, &sa, Namespace::Manifest, &keys, 1, p).is_err());
    }
}
