//! Types that hold secret bytes: zeroized on drop, redacted in `Debug`.

use std::fmt;

use zeroize::Zeroizing;

/// One secret value. Its `Debug` never prints the value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    pub fn new(value: Zeroizing<String>) -> Self {
        SecretValue(value)
    }

    /// The value itself. Call only where it is about to be shown, exported
    /// or encrypted, after verification.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Read from an untrusted document (a proposal file's plaintext) straight
/// into a zeroizing string.
impl<'de> serde::Deserialize<'de> for SecretValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| SecretValue(Zeroizing::new(s)))
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue([redacted])")
    }
}

/// A whole plaintext (a decrypted secrets file). Its `Debug` never prints
/// the bytes.
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        SecretBytes(bytes)
    }

    /// The bytes themselves; only to encrypt them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([{} bytes redacted])", self.0.len())
    }
}

/// Constant-time equality of two byte strings of possibly different length.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let v = SecretValue::new(Zeroizing::new("hunter2".into()));
        assert!(!format!("{v:?}").contains("hunter2"));
        let b = SecretBytes::new(Zeroizing::new(b"hunter2".to_vec()));
        assert!(!format!("{b:?}").contains("hunter2"));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
