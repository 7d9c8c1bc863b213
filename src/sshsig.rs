//! OpenSSH SSHSIG signatures (PROTOCOL.sshsig) with ed25519 keys.
//!
//! Every signature byreis makes names its purpose in the namespace, so a
//! signature made for one purpose (a git commit, say) never verifies as
//! another (a manifest). Verification is `verify_strict` over the exact bytes.

use ed25519_dalek::{Signature, VerifyingKey};
use ssh_key::{LineEnding, SshSig};

use crate::keys::{Signer, SigningPub};

/// What a signature is for. The strings are part of the on-disk format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    /// Git commit signatures, as `git` itself uses.
    Git,
    Manifest,
    Record,
    Roster,
    Audit,
    /// An admin's approval of a proposed manifest (k-of-n, ADR 0012).
    Proposal,
    /// An admin's decision on an access request (absorbed or rejected).
    Request,
}

impl Namespace {
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Git => "git",
            Namespace::Manifest => "manifest@byreis.dev",
            Namespace::Record => "record@byreis.dev",
            Namespace::Roster => "roster@byreis.dev",
            Namespace::Audit => "audit@byreis.dev",
            Namespace::Proposal => "proposal@byreis.dev",
            Namespace::Request => "request@byreis.dev",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SigError {
    #[error("malformed signature: {0}")]
    Malformed(String),
    #[error("signature is for namespace {found:?}, expected {expected:?}")]
    WrongNamespace {
        found: String,
        expected: &'static str,
    },
    #[error("signature was made by {0}, which is not an allowed signer here")]
    UnknownSigner(String),
    #[error("signature does not verify")]
    Invalid,
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Signs `msg` and returns the binary SSHSIG blob.
pub fn sign(signer: &Signer, ns: Namespace, msg: &[u8]) -> Result<SshSig, SigError> {
    let sig = signer
        .sign_sshsig(ns.as_str(), msg)
        .map_err(SigError::Signing)?;
    // Never hand out a signature that does not verify (an agent could
    // answer with anything).
    verify_parsed(&sig, ns, msg, std::slice::from_ref(&signer.public))?;
    Ok(sig)
}

/// Signs `msg` and returns the armored form (`-----BEGIN SSH SIGNATURE-----`),
/// ending in a newline, as `ssh-keygen -Y sign` writes it.
pub fn sign_armored(signer: &Signer, ns: Namespace, msg: &[u8]) -> Result<String, SigError> {
    let sig = sign(signer, ns, msg)?;
    let mut pem = sig
        .to_pem(LineEnding::LF)
        .map_err(|e| SigError::Signing(e.to_string()))?;
    if !pem.ends_with('\n') {
        pem.push('\n');
    }
    Ok(pem)
}

/// Signs and returns the SSHSIG blob in standard base64 (for one-line uses).
pub fn sign_base64(signer: &Signer, ns: Namespace, msg: &[u8]) -> Result<String, SigError> {
    use base64::Engine as _;
    use ssh_encoding::Encode as _;
    let sig = sign(signer, ns, msg)?;
    let mut buf = Vec::new();
    sig.encode(&mut buf)
        .map_err(|e| SigError::Signing(e.to_string()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(buf))
}

/// Verifies one parsed signature: namespace, signer among `allowed`, and
/// `verify_strict` of the ed25519 signature over the SSHSIG signed data.
/// Returns the index in `allowed` of the key that signed.
fn verify_parsed(
    sig: &SshSig,
    ns: Namespace,
    msg: &[u8],
    allowed: &[SigningPub],
) -> Result<usize, SigError> {
    if sig.version() != 1 {
        return Err(SigError::Malformed(format!("version {}", sig.version())));
    }
    if sig.namespace() != ns.as_str() {
        return Err(SigError::WrongNamespace {
            found: crate::names::escape(sig.namespace()),
            expected: ns.as_str(),
        });
    }
    if !sig.reserved().is_empty() {
        return Err(SigError::Malformed("reserved field is not empty".into()));
    }
    let Some(pk) = sig.public_key().ed25519() else {
        return Err(SigError::Malformed(format!(
            "{} signatures are not accepted; byreis uses ssh-ed25519",
            sig.algorithm()
        )));
    };
    let signer_pub = SigningPub::from_bytes(*AsRef::<[u8; 32]>::as_ref(pk));
    let Some(idx) = allowed.iter().position(|k| *k == signer_pub) else {
        return Err(SigError::UnknownSigner(signer_pub.fingerprint()));
    };
    if sig.algorithm() != ssh_key::Algorithm::Ed25519 {
        return Err(SigError::Malformed(
            "signature algorithm is not ssh-ed25519".into(),
        ));
    }
    let hash_alg = sig.hash_alg();
    let data = SshSig::signed_data(ns.as_str(), hash_alg, msg)
        .map_err(|e| SigError::Malformed(e.to_string()))?;
    let vk = VerifyingKey::from_bytes(signer_pub.bytes()).map_err(|_| SigError::Invalid)?;
    let raw: [u8; 64] = sig
        .signature_bytes()
        .try_into()
        .map_err(|_| SigError::Malformed("ed25519 signature is not 64 bytes".into()))?;
    vk.verify_strict(&data, &Signature::from_bytes(&raw))
        .map_err(|_| SigError::Invalid)?;
    Ok(idx)
}

/// Verifies an armored signature. Returns the index of the signer in `allowed`.
pub fn verify_armored(
    pem: &str,
    ns: Namespace,
    msg: &[u8],
    allowed: &[SigningPub],
) -> Result<usize, SigError> {
    let sig =
        SshSig::from_pem(pem.trim().as_bytes()).map_err(|e| SigError::Malformed(e.to_string()))?;
    verify_parsed(&sig, ns, msg, allowed)
}

/// Verifies a base64 SSHSIG blob (see [`sign_base64`]).
pub fn verify_base64(
    b64: &str,
    ns: Namespace,
    msg: &[u8],
    allowed: &[SigningPub],
) -> Result<usize, SigError> {
    use base64::Engine as _;
    use ssh_encoding::Decode as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| SigError::Malformed(e.to_string()))?;
    let sig =
        SshSig::decode(&mut raw.as_slice()).map_err(|e| SigError::Malformed(e.to_string()))?;
    verify_parsed(&sig, ns, msg, allowed)
}

/// Splits a file holding one or more armored signatures into blocks.
pub fn split_armored(text: &str) -> Vec<String> {
    const END: &str = "-----END SSH SIGNATURE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN SSH SIGNATURE-----") {
        let Some(end) = rest[start..].find(END) else {
            break;
        };
        let stop = start + end + END.len();
        out.push(rest[start..stop].to_string());
        rest = &rest[stop..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_namespaces_never_cross() {
        let s = Signer::generate("t").unwrap();
        let other = Signer::generate("o").unwrap();
        let allowed = [other.public.clone(), s.public.clone()];
        let pem = sign_armored(&s, Namespace::Manifest, b"hello").unwrap();
        assert_eq!(
            verify_armored(&pem, Namespace::Manifest, b"hello", &allowed).unwrap(),
            1
        );
        assert!(matches!(
            verify_armored(&pem, Namespace::Git, b"hello", &allowed),
            Err(SigError::WrongNamespace { .. })
        ));
        assert!(matches!(
            verify_armored(&pem, Namespace::Manifest, b"hellO", &allowed),
            Err(SigError::Invalid)
        ));
        assert!(matches!(
            verify_armored(&pem, Namespace::Manifest, b"hello", &allowed[..1]),
            Err(SigError::UnknownSigner(_))
        ));
        let b64 = sign_base64(&s, Namespace::Audit, b"x").unwrap();
        assert!(verify_base64(&b64, Namespace::Audit, b"x", &allowed).is_ok());
        assert!(verify_base64(&b64, Namespace::Record, b"x", &allowed).is_err());
        let two = format!(
            "{pem}\n{}",
            sign_armored(&other, Namespace::Manifest, b"hello").unwrap()
        );
        assert_eq!(split_armored(&two).len(), 2);
    }
}
