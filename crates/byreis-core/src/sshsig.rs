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

impl SigError {
    /// The refusal code this error is reported with.
    pub fn code(&self) -> crate::diag::Refusal {
        match self {
            SigError::Signing(_) => crate::diag::Refusal::SigningFailed,
            _ => crate::diag::Refusal::BadSignature,
        }
    }
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
    verify_parsed_with(sig, ns, allowed, |hash_alg| {
        SshSig::signed_data(ns.as_str(), hash_alg, msg)
            .map_err(|e| SigError::Malformed(e.to_string()))
    })
}

/// [`verify_parsed`] with the signed data built by `data` from the
/// signature's hash algorithm (from the message, or from its digest).
fn verify_parsed_with(
    sig: &SshSig,
    ns: Namespace,
    allowed: &[SigningPub],
    data: impl FnOnce(ssh_key::HashAlg) -> Result<Vec<u8>, SigError>,
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
    let data = data(sig.hash_alg())?;
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
    verify_parsed(&decode_base64(b64)?, ns, msg, allowed)
}

/// The SSHSIG signed data (PROTOCOL.sshsig) for a message whose SHA-512
/// is `digest`: what an ed25519 key signs, built without the message, so a
/// signature over a manifest can be checked where only its digest is kept
/// (a registry record, ADR 0017).
pub fn signed_data_sha512(ns: Namespace, digest: &[u8; 64]) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(&(s.len() as u32).to_be_bytes());
        out.extend_from_slice(s);
    }
    let mut out = b"SSHSIG".to_vec();
    string(&mut out, ns.as_str().as_bytes());
    string(&mut out, b"");
    string(&mut out, b"sha512");
    string(&mut out, digest);
    out
}

/// Verifies a base64 SSHSIG blob over the message whose SHA-512 is
/// `digest`. Only sha512 signatures can verify (byreis makes no others).
pub fn verify_base64_sha512(
    b64: &str,
    ns: Namespace,
    digest: &[u8; 64],
    allowed: &[SigningPub],
) -> Result<usize, SigError> {
    let sig = decode_base64(b64)?;
    verify_parsed_with(&sig, ns, allowed, |hash_alg| {
        if hash_alg != ssh_key::HashAlg::Sha512 {
            return Err(SigError::Malformed(format!(
                "hash algorithm {hash_alg} (byreis signs with sha512)"
            )));
        }
        Ok(signed_data_sha512(ns, digest))
    })
}

/// Signs the message whose SHA-512 is `digest` and returns the SSHSIG blob
/// in base64; it verifies over the message exactly as [`sign_base64`]'s.
pub fn sign_base64_sha512(
    signer: &Signer,
    ns: Namespace,
    digest: &[u8; 64],
) -> Result<String, SigError> {
    use base64::Engine as _;
    use ssh_encoding::Encode as _;
    let sig = signer
        .sign_sshsig_data(ns.as_str(), &signed_data_sha512(ns, digest))
        .map_err(SigError::Signing)?;
    let mut buf = Vec::new();
    sig.encode(&mut buf)
        .map_err(|e| SigError::Signing(e.to_string()))?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(buf);
    verify_base64_sha512(&b64, ns, digest, std::slice::from_ref(&signer.public))?;
    Ok(b64)
}

/// The base64 blob of an armored signature (the form a record keeps).
pub fn armored_to_base64(pem: &str) -> Result<String, SigError> {
    use base64::Engine as _;
    use ssh_encoding::Encode as _;
    let sig =
        SshSig::from_pem(pem.trim().as_bytes()).map_err(|e| SigError::Malformed(e.to_string()))?;
    let mut buf = Vec::new();
    sig.encode(&mut buf)
        .map_err(|e| SigError::Malformed(e.to_string()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(buf))
}

fn decode_base64(b64: &str) -> Result<SshSig, SigError> {
    use base64::Engine as _;
    use ssh_encoding::Decode as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| SigError::Malformed(e.to_string()))?;
    SshSig::decode(&mut raw.as_slice()).map_err(|e| SigError::Malformed(e.to_string()))
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

    // A signature over a message verifies from its SHA-512 alone, and one
    // made from the digest verifies over the message: the record's copy of
    // a manifest's approvals checks out where the manifest is not at hand.
    #[test]
    fn digest_signatures_agree_with_message_signatures() {
        use sha2::Digest as _;
        let s = Signer::generate("t").unwrap();
        let allowed = [s.public.clone()];
        let msg = b"format: byreis-manifest/1\n";
        let digest: [u8; 64] = sha2::Sha512::digest(msg).into();
        for ns in [Namespace::Manifest, Namespace::Proposal] {
            let b64 = sign_base64(&s, ns, msg).unwrap();
            assert_eq!(
                verify_base64_sha512(&b64, ns, &digest, &allowed).unwrap(),
                0
            );
            let d64 = sign_base64_sha512(&s, ns, &digest).unwrap();
            assert_eq!(verify_base64(&d64, ns, msg, &allowed).unwrap(), 0);
            let pem = sign_armored(&s, ns, msg).unwrap();
            let blob = armored_to_base64(&pem).unwrap();
            assert_eq!(
                verify_base64_sha512(&blob, ns, &digest, &allowed).unwrap(),
                0
            );
        }
        let b64 = sign_base64(&s, Namespace::Proposal, msg).unwrap();
        let other: [u8; 64] = sha2::Sha512::digest(b"other").into();
        assert!(verify_base64_sha512(&b64, Namespace::Proposal, &other, &allowed).is_err());
        assert!(verify_base64_sha512(&b64, Namespace::Manifest, &digest, &allowed).is_err());
    }

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

    /// An SSHSIG blob's fields: version, then public key, namespace,
    /// reserved, hash algorithm and signature (PROTOCOL.sshsig).
    fn fields(raw: &[u8]) -> (u32, Vec<Vec<u8>>) {
        assert_eq!(&raw[..6], b"SSHSIG");
        let u32_at = |i: usize| u32::from_be_bytes(raw[i..i + 4].try_into().unwrap());
        let version = u32_at(6);
        let mut at = 10;
        let mut out = Vec::new();
        for _ in 0..5 {
            let n = u32_at(at) as usize;
            out.push(raw[at + 4..at + 4 + n].to_vec());
            at += 4 + n;
        }
        assert_eq!(at, raw.len());
        (version, out)
    }

    fn blob(version: u32, f: &[Vec<u8>]) -> String {
        use base64::Engine as _;
        let mut raw = b"SSHSIG".to_vec();
        raw.extend_from_slice(&version.to_be_bytes());
        for x in f {
            raw.extend_from_slice(&(x.len() as u32).to_be_bytes());
            raw.extend_from_slice(x);
        }
        base64::engine::general_purpose::STANDARD.encode(raw)
    }

    /// docs/formats.md: a signature counts only with version 1, the
    /// expected namespace, an empty reserved field, hash sha256 or
    /// sha512, and an ed25519 signature that verifies over the SSHSIG
    /// signed data. Each field is changed in an otherwise valid blob.
    #[test]
    fn every_sshsig_field_is_checked() {
        use base64::Engine as _;
        let s = Signer::generate("t").unwrap();
        let allowed = [s.public.clone()];
        let good = sign_base64(&s, Namespace::Manifest, b"m").unwrap();
        assert_eq!(
            verify_base64(&good, Namespace::Manifest, b"m", &allowed).unwrap(),
            0
        );
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&good)
            .unwrap();
        let (version, f) = fields(&raw);
        assert_eq!(version, 1);
        assert_eq!(blob(version, &f), good, "the test re-encodes exactly");
        assert_eq!(f[3], b"sha512", "byreis signs with sha512");
        let with = |i: usize, v: &[u8]| {
            let mut g = f.clone();
            g[i] = v.to_vec();
            blob(1, &g)
        };
        let refused = |b64: String, what: &str| {
            let r = verify_base64(&b64, Namespace::Manifest, b"m", &allowed);
            assert!(r.is_err(), "{what}: accepted");
            r.unwrap_err()
        };
        for v in [0, 2] {
            let e = refused(blob(v, &f), "version");
            assert!(matches!(e, SigError::Malformed(_)), "version {v}: {e}");
        }
        let e = refused(with(1, b"git"), "namespace");
        assert!(matches!(e, SigError::WrongNamespace { .. }), "{e}");
        let e = refused(with(2, b"x"), "reserved");
        assert!(matches!(e, SigError::Malformed(_)), "{e}");
        for h in [&b"sha1"[..], b"md5", b"SHA512", b""] {
            refused(with(3, h), "hash algorithm");
        }
        // sha256 is accepted as a name, but this signature is over the
        // sha512 digest, so it does not verify.
        let e = refused(with(3, b"sha256"), "sha256 over a sha512 signature");
        assert!(matches!(e, SigError::Invalid), "{e}");
        let mut sig = f[4].clone();
        let last = sig.len() - 1;
        sig[last] ^= 1;
        let e = refused(with(4, &sig), "signature bit flipped");
        assert!(
            matches!(e, SigError::Invalid | SigError::Malformed(_)),
            "{e}"
        );
    }
}
