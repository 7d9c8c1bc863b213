//! The secrets file: a native age v1 file, ASCII-armored, whose plaintext is
//! a flat YAML mapping. This is the only module that encrypts or decrypts.
//!
//! Anyone holding the public keys can write a valid age file (age has no
//! sender authentication), so nothing here decides whether a file is
//! genuine: callers hand a file to [`decrypt`] only after its SHA-256 matched
//! the verified manifest.

use std::io::{Read, Write};

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use zeroize::Zeroizing;

use crate::keys::{AgeIdentity, AgeRecipient};
use crate::secret::SecretBytes;
use crate::yaml::{self, Secrets};

/// Largest secrets file byreis reads (armored).
pub const MAX_FILE_BYTES: usize = 4 << 20;

const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";

#[derive(Debug, thiserror::Error)]
pub enum AgeFileError {
    #[error("not an ASCII-armored age file (it must start with {ARMOR_BEGIN})")]
    NotArmored,
    #[error("the file is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    #[error("malformed age file: {0}")]
    Malformed(String),
    #[error("your identity is not among this file's recipients")]
    NotRecipient,
    #[error("decryption failed: {0}")]
    Decrypt(String),
    #[error("encryption failed: {0}")]
    Encrypt(String),
    #[error("the decrypted content is not valid secrets YAML: {0}")]
    Plaintext(#[from] yaml::YamlError),
}

impl AgeFileError {
    /// The refusal code this error is reported with.
    pub fn code(&self) -> crate::diag::Refusal {
        use crate::diag::Refusal as R;
        match self {
            AgeFileError::NotArmored
            | AgeFileError::TooLarge
            | AgeFileError::Malformed(_)
            | AgeFileError::Plaintext(_) => R::BadSecretsFile,
            AgeFileError::NotRecipient => R::NotAReader,
            AgeFileError::Decrypt(_) => R::DecryptFailed,
            AgeFileError::Encrypt(_) => R::EncryptFailed,
        }
    }
}

/// Encrypts `secrets` to exactly `recipients` with a fresh file key, armored.
pub fn encrypt(secrets: &Secrets, recipients: &[AgeRecipient]) -> Result<Vec<u8>, AgeFileError> {
    let plaintext = yaml::emit_secrets(secrets);
    encrypt_bytes(plaintext.as_bytes(), recipients)
}

/// Encrypts a plaintext exactly as it is (one [`decrypt_plaintext`]
/// returned) to exactly `recipients` with a fresh file key, armored.
pub fn encrypt_plaintext(
    plaintext: &SecretBytes,
    recipients: &[AgeRecipient],
) -> Result<Vec<u8>, AgeFileError> {
    encrypt_bytes(plaintext.expose(), recipients)
}

/// Upper bound of an armored age file's size: header (version line, one
/// X25519 or ssh-ed25519 stanza per recipient, MAC), nonce, payload with
/// one tag per 64 KiB chunk; base64 with a newline every 64 columns; the
/// armor lines.
fn armored_size(plaintext_len: usize, recipients: usize) -> usize {
    let chunks = plaintext_len / (64 << 10) + 1;
    let binary = 32 + 160 * recipients + 70 + 16 + plaintext_len + 16 * chunks;
    let base64 = binary.div_ceil(3) * 4;
    base64 + base64 / 64 + 1 + 2 * 40
}

fn encrypt_bytes(plaintext: &[u8], recipients: &[AgeRecipient]) -> Result<Vec<u8>, AgeFileError> {
    let enc_err = |e: &dyn std::fmt::Display| AgeFileError::Encrypt(e.to_string());
    let recips: Vec<Box<dyn age::Recipient + Send + Sync>> =
        recipients.iter().map(|r| r.to_age()).collect();
    let encryptor =
        age::Encryptor::with_recipients(recips.iter().map(|r| r.as_ref() as &dyn age::Recipient))
            .map_err(|e| enc_err(&e))?;
    // Sized once: a rotation holds a batch of these, and a doubling Vec
    // would keep up to twice the bytes.
    let mut out = Vec::with_capacity(armored_size(plaintext.len(), recipients.len()));
    let armor =
        ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).map_err(|e| enc_err(&e))?;
    let mut w = encryptor.wrap_output(armor).map_err(|e| enc_err(&e))?;
    w.write_all(plaintext).map_err(|e| enc_err(&e))?;
    // Two finishes: the STREAM writer, then the armor (age crate API).
    w.finish()
        .and_then(|armor| armor.finish())
        .map_err(|e| enc_err(&e))?;
    out.shrink_to_fit();
    Ok(out)
}

/// An identity that tries one stanza first (a hint: the manifest lists
/// readers in the order byreis wrote their stanzas), then all of them.
/// Saves up to R-1 key agreements per file; correctness does not depend
/// on the hint.
struct Hinted<'a> {
    inner: &'a dyn age::Identity,
    hint: Option<usize>,
}

impl age::Identity for Hinted<'_> {
    fn unwrap_stanza(
        &self,
        stanza: &age_core::format::Stanza,
    ) -> Option<Result<age_core::format::FileKey, age::DecryptError>> {
        self.inner.unwrap_stanza(stanza)
    }

    fn unwrap_stanzas(
        &self,
        stanzas: &[age_core::format::Stanza],
    ) -> Option<Result<age_core::format::FileKey, age::DecryptError>> {
        if let Some(first) = self.hint.and_then(|i| stanzas.get(i)) {
            if let Some(r) = self.inner.unwrap_stanza(first) {
                return Some(r);
            }
        }
        self.inner.unwrap_stanzas(stanzas)
    }
}

/// The de-armored binary age file.
fn dearmor(file: &[u8]) -> Result<Vec<u8>, AgeFileError> {
    if file.len() > MAX_FILE_BYTES {
        return Err(AgeFileError::TooLarge);
    }
    if !file.starts_with(ARMOR_BEGIN.as_bytes()) {
        return Err(AgeFileError::NotArmored);
    }
    let mut binary = Vec::with_capacity(file.len());
    ArmoredReader::new(file)
        .read_to_end(&mut binary)
        .map_err(|e| AgeFileError::Malformed(e.to_string()))?;
    Ok(binary)
}

/// What the header says about recipients. X25519 stanzas are anonymous, so
/// only their number and type can be checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StanzaCount {
    pub x25519: usize,
    pub ssh_ed25519: usize,
    /// Stanzas of any other type that is not grease (scrypt, ssh-rsa, plugins).
    pub other: usize,
    /// The random `*-grease` stanzas the age crate adds (one per file).
    pub grease: usize,
}

impl StanzaCount {
    /// Stanzas that can unwrap the file key.
    pub fn real(&self) -> usize {
        self.x25519 + self.ssh_ed25519 + self.other
    }
}

/// Parses the age v1 header and counts stanzas by type.
pub fn count_stanzas(file: &[u8]) -> Result<StanzaCount, AgeFileError> {
    let binary = dearmor(file)?;
    header_stanzas(&binary)
}

fn header_stanzas(binary: &[u8]) -> Result<StanzaCount, AgeFileError> {
    let bad = |m: &str| AgeFileError::Malformed(m.to_string());
    let mut lines = binary.split(|&b| b == b'\n');
    if lines.next() != Some(b"age-encryption.org/v1") {
        return Err(bad("missing the age-encryption.org/v1 header line"));
    }
    let mut count = StanzaCount::default();
    let mut line = lines.next().ok_or_else(|| bad("truncated header"))?;
    loop {
        if line.starts_with(b"--- ") {
            return Ok(count);
        }
        let Some(args) = line.strip_prefix(b"-> ") else {
            return Err(bad("expected a stanza or the header MAC"));
        };
        let ty = args.split(|&b| b == b' ').next().unwrap_or_default();
        match ty {
            b"X25519" => count.x25519 += 1,
            b"ssh-ed25519" => count.ssh_ed25519 += 1,
            t if t.ends_with(b"-grease") => count.grease += 1,
            _ => count.other += 1,
        }
        // Body: base64 lines of 64 columns, ended by a shorter line.
        loop {
            let body = lines.next().ok_or_else(|| bad("truncated stanza"))?;
            if body.len() > 64 {
                return Err(bad("stanza body line longer than 64 columns"));
            }
            if body.len() < 64 {
                break;
            }
        }
        line = lines.next().ok_or_else(|| bad("truncated header"))?;
    }
}

/// Decrypts an armored secrets file with `identity` and parses its YAML.
pub fn decrypt(file: &[u8], identity: &AgeIdentity) -> Result<Secrets, AgeFileError> {
    decrypt_hinted(file, identity, None)
}

/// [`decrypt`], trying stanza number `hint` first.
pub fn decrypt_hinted(
    file: &[u8],
    identity: &AgeIdentity,
    hint: Option<usize>,
) -> Result<Secrets, AgeFileError> {
    let plaintext = decrypt_bytes(file, identity, hint)?;
    let text = std::str::from_utf8(&plaintext)
        .map_err(|_| AgeFileError::Malformed("plaintext is not UTF-8".into()))?;
    Ok(yaml::parse_secrets(text)?)
}

/// [`decrypt_hinted`], also returning the plaintext bytes exactly as they
/// were encrypted (a rotation re-encrypts these, not a re-serialization).
pub fn decrypt_plaintext(
    file: &[u8],
    identity: &AgeIdentity,
    hint: Option<usize>,
) -> Result<(SecretBytes, Secrets), AgeFileError> {
    let plaintext = decrypt_bytes(file, identity, hint)?;
    let text = std::str::from_utf8(&plaintext)
        .map_err(|_| AgeFileError::Malformed("plaintext is not UTF-8".into()))?;
    let secrets = yaml::parse_secrets(text)?;
    // An exact-size copy: the buffer decryption wrote into is as large as
    // the ciphertext, and is zeroized when it is dropped here.
    Ok((
        SecretBytes::new(Zeroizing::new(plaintext.to_vec())),
        secrets,
    ))
}

/// The read path of every secrets file, short of parsing the plaintext:
/// strict armor, then age's header, MAC and STREAM checks, trying stanza
/// `hint` first. Returns the plaintext exactly as encrypted. (The C2SP
/// CCTV age vectors run through this, in `tests/it/cctv.rs`.)
pub fn decrypt_bytes(
    file: &[u8],
    identity: &AgeIdentity,
    hint: Option<usize>,
) -> Result<Zeroizing<Vec<u8>>, AgeFileError> {
    let binary = dearmor(file)?;
    // byreis's own header check first: the age crate still accepts older
    // stanzas without their final short line, which the age spec (and the
    // CCTV vectors stanza_missing_body, stanza_missing_final_line) refuse.
    header_stanzas(&binary)?;
    let decryptor = age::Decryptor::new_buffered(binary.as_slice())
        .map_err(|e| AgeFileError::Malformed(e.to_string()))?;
    if decryptor.is_scrypt() {
        return Err(AgeFileError::Malformed(
            "passphrase-encrypted files are not byreis files".into(),
        ));
    }
    let mut reader = decryptor
        .decrypt(std::iter::once(&Hinted {
            inner: identity.age(),
            hint,
        } as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => AgeFileError::NotRecipient,
            e => AgeFileError::Decrypt(e.to_string()),
        })?;
    // Never reallocated while it fills: a growing Vec would free copies of
    // the plaintext without zeroizing them. The plaintext is shorter than
    // the ciphertext.
    let mut out = Zeroizing::new(Vec::with_capacity(
        binary.len().min(yaml::MAX_SECRETS_BYTES + 1),
    ));
    reader
        .by_ref()
        .take(yaml::MAX_SECRETS_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| AgeFileError::Decrypt(e.to_string()))?;
    if out.len() > yaml::MAX_SECRETS_BYTES {
        return Err(AgeFileError::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/formats.md: passphrase (scrypt) files are refused, by the
    /// header count (a stanza of another type) and by the read path.
    #[test]
    fn passphrase_files_are_refused() {
        let mut r = age::scrypt::Recipient::new(age::secrecy::SecretString::from("pw"));
        r.set_work_factor(2);
        let enc =
            age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
        let mut out = Vec::new();
        let armor = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).unwrap();
        let mut w = enc.wrap_output(armor).unwrap();
        w.write_all(b"A: \"1\"\n").unwrap();
        w.finish().and_then(|a| a.finish()).unwrap();
        let c = count_stanzas(&out).unwrap();
        assert_eq!((c.x25519, c.ssh_ed25519, c.other), (0, 0, 1), "{c:?}");
        let id = AgeIdentity::generate();
        let e = decrypt_bytes(&out, &id, None).unwrap_err();
        assert!(e.to_string().contains("passphrase-encrypted"), "{e}");
    }

    use crate::yaml::secrets_of as secrets;

    #[test]
    fn round_trip_and_counts() {
        let a = AgeIdentity::generate();
        let b = AgeIdentity::generate();
        let outsider = AgeIdentity::generate();
        let s = secrets(&[("A", "1"), ("B", "two\nlines")]);
        let file = encrypt(&s, &[a.recipient(), b.recipient()]).unwrap();
        assert!(file.starts_with(ARMOR_BEGIN.as_bytes()));
        let c = count_stanzas(&file).unwrap();
        assert_eq!((c.x25519, c.real(), c.grease), (2, 2, 1));
        for id in [&a, &b] {
            let got = decrypt(&file, id).unwrap();
            assert_eq!(got["B"].expose(), "two\nlines");
        }
        assert!(matches!(
            decrypt(&file, &outsider),
            Err(AgeFileError::NotRecipient)
        ));
    }

    #[test]
    fn refuses_binary_and_garbage() {
        assert!(matches!(
            count_stanzas(b"age-encryption.org/v1\n"),
            Err(AgeFileError::NotArmored)
        ));
        let file = format!("{ARMOR_BEGIN}\nAAAA\n-----END AGE ENCRYPTED FILE-----\n");
        assert!(count_stanzas(file.as_bytes()).is_err());
    }
}
