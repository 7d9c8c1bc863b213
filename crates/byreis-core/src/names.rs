//! Names that come from people: members, environments, projects, secret keys.
//!
//! Invariant 9: every name is ASCII from a small alphabet, checked where it
//! enters, and anything shown back to a terminal goes through [`escape`].

use std::fmt::Write as _;

/// What kind of name is being checked; used in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Member,
    Environment,
    Project,
    SecretKey,
}

impl Kind {
    fn rule(self) -> &'static str {
        match self {
            Kind::Member => "1-64 characters from a-z 0-9 . _ -, starting with a letter or digit",
            Kind::Environment | Kind::Project => {
                "1-32 characters from a-z 0-9 _ -, starting with a letter or digit"
            }
            Kind::SecretKey => {
                "an environment variable name: 1-128 characters from A-Z a-z 0-9 _, not starting with a digit"
            }
        }
    }
    fn label(self) -> &'static str {
        match self {
            Kind::Member => "member name",
            Kind::Environment => "environment name",
            Kind::Project => "project name",
            Kind::SecretKey => "secret name",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid {label} {shown}: it must be {rule}")]
pub struct NameError {
    label: &'static str,
    shown: String,
    rule: &'static str,
}

impl NameError {
    /// The refusal code this error is reported with.
    pub fn code(&self) -> crate::diag::Refusal {
        crate::diag::Refusal::BadName
    }
}

/// Checks `name` against the alphabet of `kind`.
pub fn check(kind: Kind, name: &str) -> Result<(), NameError> {
    let ok = match kind {
        Kind::Member => {
            (1..=64).contains(&name.len())
                && starts_alnum_lower(name)
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        }
        Kind::Environment | Kind::Project => {
            (1..=32).contains(&name.len())
                && starts_alnum_lower(name)
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b))
        }
        Kind::SecretKey => {
            (1..=128).contains(&name.len())
                && !name.as_bytes()[0].is_ascii_digit()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
    };
    if ok {
        Ok(())
    } else {
        Err(NameError {
            label: kind.label(),
            shown: quoted(name),
            rule: kind.rule(),
        })
    }
}

fn starts_alnum_lower(name: &str) -> bool {
    name.as_bytes()
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Escapes control characters and non-ASCII so untrusted text cannot move
/// the cursor, clear the screen or impersonate other output.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            _ => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    out
}

/// `escape`d and in double quotes, for error messages.
pub fn quoted(s: &str) -> String {
    let mut shown = escape(s);
    if shown.len() > 80 {
        shown.truncate(77);
        shown.push_str("...");
    }
    format!("\"{shown}\"")
}

/// The file that holds environment `env`, relative to the project root.
pub fn env_file(env: &str) -> String {
    format!("secrets/{env}.enc.yaml")
}

/// The environment a path under `secrets/` names, if it has the right shape.
pub fn env_of_file(file_name: &str) -> Option<&str> {
    let env = file_name.strip_suffix(".enc.yaml")?;
    check(Kind::Environment, env).ok().map(|_| env)
}

/// The closest of `known` to `name`, within two edits (a "did you mean").
pub fn closest<'a, S: AsRef<str> + ?Sized + 'a>(
    name: &str,
    known: impl IntoIterator<Item = &'a S>,
) -> Option<&'a S> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    known
        .into_iter()
        .map(|k| (distance(name, k.as_ref()), k))
        .filter(|(d, _)| *d <= 2)
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.as_ref().cmp(b.1.as_ref())))
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabets() {
        assert!(check(Kind::Member, "alice.smith-2").is_ok());
        assert!(check(Kind::Member, "Alice").is_err());
        assert!(check(Kind::Member, "-x").is_err());
        assert!(check(Kind::Member, "").is_err());
        assert!(check(Kind::Member, "al\u{0456}ce").is_err());
        assert!(check(Kind::Environment, "prod").is_ok());
        assert!(check(Kind::Environment, "pro.d").is_err());
        assert!(check(Kind::Environment, "../x").is_err());
        assert!(check(Kind::SecretKey, "DATABASE_URL").is_ok());
        assert!(check(Kind::SecretKey, "_x1").is_ok());
        assert!(check(Kind::SecretKey, "1X").is_err());
        assert!(check(Kind::SecretKey, "A-B").is_err());
        assert!(check(Kind::SecretKey, &"A".repeat(129)).is_err());
    }

    #[test]
    fn escapes_controls() {
        assert_eq!(escape("a\x1b[2Jb\n"), "a\\u{1b}[2Jb\\n");
        assert_eq!(escape("é"), "\\u{e9}");
        let err = check(Kind::Member, "x\x1b[31m").unwrap_err().to_string();
        assert!(!err.contains('\x1b'), "{err}");
    }

    #[test]
    fn env_files() {
        assert_eq!(env_of_file("prod.enc.yaml"), Some("prod"));
        assert_eq!(env_of_file("Prod.enc.yaml"), None);
        assert_eq!(env_of_file("prod.yaml"), None);
        assert_eq!(env_file("prod"), "secrets/prod.enc.yaml");
    }
}
