//! The C2SP CCTV age test vectors (tests/testdata/cctv-age/; where they come
//! from, and which were left out and why, is in its SOURCE.md) run through
//! byreis's own read path: `agefile::decrypt_bytes` (strict armor, then the
//! age crate's header, MAC and STREAM checks) and `agefile::count_stanzas`
//! (byreis's own header check, run before decryption during verification).
//!
//! byreis reads only ASCII-armored files. The armored vectors run as they
//! are. A binary vector must be refused as it is (`NotArmored`). Then the
//! test armors its bytes with the age crate's `ArmoredWriter`
//! (`Format::AsciiArmor`, the armor byreis writes) and runs that through the
//! same path, so that its header, MAC and STREAM cases still reach the
//! checks behind the armor. Armoring changes nothing the vector tests:
//! de-armoring gives back exactly the vector's bytes. (One exception: the
//! age crate's reader refuses the armor its writer makes of zero bytes, so
//! `empty` is refused at the armor, not at the header; it expects a
//! refusal either way.)
//!
//! byreis's size limit comes first: a file over `agefile::MAX_FILE_BYTES`
//! must be refused as `TooLarge` whatever the vector expects (the 257- and
//! 258-chunk `stream_*` vectors, 16 MiB each). The other vectors that
//! expect success but that byreis refuses on purpose are listed, with the
//! refusal, in `STRICTER`.
//!
//! A `success` vector must decrypt to the vector's payload hash. A failure
//! vector must be refused; where byreis's errors tell the layers apart, the
//! refusal must also come from the layer the vector names (see `want`).
//! byreis releases no plaintext from a file it refuses, so a `payload
//! failure` vector's hash of the partial payload is met trivially.
//! `count_stanzas` must accept every `success` vector; for the failure
//! vectors its outcome is only recorded.
//!
//! To see every vector's outcomes (including whether `count_stanzas` refused
//! it): `BYREIS_CCTV_REPORT=1 cargo test --test cctv -- --nocapture`.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use age::armor::{ArmoredWriter, Format};
use byreis::agefile::{self, AgeFileError, MAX_FILE_BYTES};
use byreis::keys::AgeIdentity;
use sha2::{Digest, Sha256};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testdata/cctv-age");

/// The files in `DIR` that are not vectors.
const NOT_VECTORS: &[&str] = &["SOURCE.md", ".gitattributes"];

/// Vector files vendored (SOURCE.md): the 123 in the age 0.12.1 package
/// minus the 24 scrypt-only vectors excluded when vendoring.
const VENDORED: usize = 123 - 24;

/// Stanza hints tried for every file: none, the first stanza, the second.
/// A hint only changes which stanza is tried first; it must never change
/// whether a file is accepted.
const HINTS: [Option<usize>; 3] = [None, Some(0), Some(1)];

/// Vectors that expect success but that byreis refuses on purpose, with
/// the refusal it must give. Each entry is a documented difference from
/// the vector, not a tolerance: any other outcome fails the test.
struct Stricter {
    vector: &'static str,
    refusal: &'static str,
    is: fn(&AgeFileError) -> bool,
}

fn not_armored(e: &AgeFileError) -> bool {
    matches!(e, AgeFileError::NotArmored)
}

const STRICTER: &[Stricter] = &[
    // Whitespace before the BEGIN line. byreis's armor is strict: the file
    // must start with the BEGIN line (files byreis writes always do). The
    // age crate refuses this vector too (its tests/testkit.rs).
    Stricter {
        vector: "armor_whitespace_outside",
        refusal: "NotArmored",
        is: not_armored,
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Success,
    NoMatch,
    HmacFailure,
    HeaderFailure,
    ArmorFailure,
    PayloadFailure,
}

/// The vector format's names of the expectations.
const EXPECTATIONS: [(&str, Expect); 6] = [
    ("success", Expect::Success),
    ("no match", Expect::NoMatch),
    ("HMAC failure", Expect::HmacFailure),
    ("header failure", Expect::HeaderFailure),
    ("armor failure", Expect::ArmorFailure),
    ("payload failure", Expect::PayloadFailure),
];

impl Expect {
    fn parse(s: &str) -> Option<Expect> {
        EXPECTATIONS.iter().find(|(n, _)| *n == s).map(|&(_, e)| e)
    }

    fn name(self) -> &'static str {
        EXPECTATIONS
            .iter()
            .find(|(_, e)| *e == self)
            .expect("listed")
            .0
    }
}

struct Vector {
    name: String,
    expect: Expect,
    /// SHA-256 of the payload, lowercase hex (`success`, `payload failure`).
    payload: Option<String>,
    identities: Vec<String>,
    passphrases: usize,
    armored: bool,
    /// The age file, decompressed if the vector is stored compressed.
    age_file: Vec<u8>,
}

/// A vector: `key: value` lines, an empty line, then the age file.
fn parse_vector(name: &str, bytes: &[u8]) -> Vector {
    let end = bytes
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or_else(|| panic!("{name}: no empty line after the vector's header"));
    let header = std::str::from_utf8(&bytes[..end])
        .unwrap_or_else(|_| panic!("{name}: the vector's header is not UTF-8"));
    let body = &bytes[end + 2..];
    let (mut expect, mut payload, mut identities) = (None, None, Vec::new());
    let (mut passphrases, mut armored, mut compressed) = (0, false, false);
    for line in header.lines() {
        let (key, value) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("{name}: bad header line {line:?}"));
        match key {
            "expect" => {
                expect = Some(Expect::parse(value).unwrap_or_else(|| {
                    panic!("{name}: unknown expectation {value:?}");
                }));
            }
            "payload" => payload = Some(value.to_ascii_lowercase()),
            "identity" => identities.push(value.to_string()),
            "passphrase" => passphrases += 1,
            "armored" => armored = value == "yes",
            "compressed" => {
                assert_eq!(value, "zlib", "{name}: unknown compression");
                compressed = true;
            }
            "file key" | "comment" => {}
            // CCTV says to ignore vectors with unknown keys; here one fails
            // the test instead, so that no vendored vector is skipped.
            _ => panic!("{name}: unknown vector header key {key:?}"),
        }
    }
    let expect = expect.unwrap_or_else(|| panic!("{name}: no `expect:` line"));
    if matches!(expect, Expect::Success | Expect::PayloadFailure) {
        let hash = payload.as_deref().unwrap_or_default();
        assert!(
            hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}: `{}` needs a `payload:` SHA-256, got {hash:?}",
            expect.name()
        );
    }
    let age_file = if compressed {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(body)
            .read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("{name}: zlib: {e}"));
        out
    } else {
        body.to_vec()
    };
    Vector {
        name: name.to_string(),
        expect,
        payload,
        identities,
        passphrases,
        armored,
        age_file,
    }
}

fn identity(v: &Vector) -> AgeIdentity {
    match v.identities.as_slice() {
        [one] => AgeIdentity::parse(&format!("{one}\n"), &format!("cctv:{}", v.name))
            .unwrap_or_else(|e| panic!("{}: the vector's identity: {e}", v.name)),
        [] => {
            assert_eq!(
                v.passphrases, 0,
                "{}: a passphrase-only vector; those are excluded (SOURCE.md)",
                v.name
            );
            // `empty` and `armor_empty` name no identity: they fail before
            // one is used, so any X25519 identity will do.
            AgeIdentity::generate()
        }
        _ => panic!("{}: more than one identity; byreis uses one", v.name),
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The binary age file in the armor byreis writes.
fn armor(binary: &[u8]) -> Vec<u8> {
    let mut w = ArmoredWriter::wrap_output(Vec::new(), Format::AsciiArmor).unwrap();
    w.write_all(binary).unwrap();
    w.finish().unwrap()
}

/// What byreis must do with one file.
enum Want<'a> {
    /// Decrypt it to a plaintext with this SHA-256 (hex).
    Plaintext(&'a str),
    /// Refuse it, with an error `is` accepts (`what` says which).
    Refusal {
        what: &'static str,
        is: fn(&AgeFileError) -> bool,
    },
}

impl Want<'_> {
    fn met_by(&self, got: &Result<String, AgeFileError>) -> bool {
        match (self, got) {
            (Want::Plaintext(hash), Ok(got)) => got == hash,
            (Want::Refusal { is, .. }, Err(e)) => is(e),
            _ => false,
        }
    }

    fn describe(&self) -> String {
        match self {
            Want::Plaintext(hash) => format!("decrypt to plaintext sha256 {hash}"),
            Want::Refusal { what, .. } => format!("refuse it ({what})"),
        }
    }
}

fn too_large() -> Want<'static> {
    Want::Refusal {
        what: "TooLarge: the armored file is over agefile::MAX_FILE_BYTES",
        is: |e| matches!(e, AgeFileError::TooLarge),
    }
}

/// What `decrypt_bytes` must do with `file`, an armored form of `v`.
fn want<'a>(v: &'a Vector, file: &[u8]) -> Want<'a> {
    if file.len() > MAX_FILE_BYTES {
        // byreis's size limit comes first, whatever the vector expects.
        return too_large();
    }
    if let Some(s) = STRICTER.iter().find(|s| s.vector == v.name) {
        return Want::Refusal {
            what: s.refusal,
            is: s.is,
        };
    }
    match v.expect {
        Expect::Success => Want::Plaintext(v.payload.as_deref().unwrap_or_default()),
        Expect::ArmorFailure => Want::Refusal {
            what: "NotArmored or Malformed: refused before any stanza is tried",
            is: |e| matches!(e, AgeFileError::NotArmored | AgeFileError::Malformed(_)),
        },
        Expect::NoMatch => Want::Refusal {
            what: "NotRecipient or Decrypt: the header parsed, no stanza unwrapped",
            is: |e| matches!(e, AgeFileError::NotRecipient | AgeFileError::Decrypt(_)),
        },
        Expect::HmacFailure | Expect::PayloadFailure => Want::Refusal {
            what: "Decrypt: refused after a file key was unwrapped",
            is: |e| matches!(e, AgeFileError::Decrypt(_)),
        },
        Expect::HeaderFailure => Want::Refusal {
            what: "any refusal",
            is: |_| true,
        },
    }
}

fn show<T: std::fmt::Debug>(got: &Result<T, AgeFileError>) -> String {
    match got {
        Ok(t) => format!("Ok({t:?})"),
        Err(e) => format!("refused: {e:?}"),
    }
}

#[derive(Default)]
struct Run {
    mismatches: Vec<String>,
    report: Vec<String>,
}

impl Run {
    fn mismatch(&mut self, v: &Vector, form: &str, call: &str, should: &str, got: String) {
        self.mismatches.push(format!(
            "{} ({form}, {call}): the vector expects `{}`, so byreis should {should}; byreis: {got}",
            v.name,
            v.expect.name()
        ));
    }

    /// Runs one armored file of `v` through `decrypt_bytes` (with each
    /// hint) and `count_stanzas`.
    fn armored(&mut self, v: &Vector, form: &str, file: &[u8], id: &AgeIdentity) {
        let want = want(v, file);
        let mut outcomes = Vec::new();
        for hint in HINTS {
            let got = agefile::decrypt_bytes(file, id, hint).map(|p| hex(&Sha256::digest(&p[..])));
            let call = format!("decrypt_bytes, hint {hint:?}");
            if !want.met_by(&got) {
                self.mismatch(v, form, &call, &want.describe(), show(&got));
            }
            outcomes.push(show(&got));
        }
        outcomes.dedup();

        let counted = agefile::count_stanzas(file);
        let stricter = STRICTER.iter().any(|s| s.vector == v.name);
        let count_ok = match &want {
            // A file byreis decrypts must pass its own header check too.
            Want::Plaintext(_) => counted.is_ok(),
            // The size limit and the documented refusals come first here too.
            Want::Refusal { is, .. } if stricter || file.len() > MAX_FILE_BYTES => {
                matches!(&counted, Err(e) if is(e))
            }
            // For the other failure vectors this outcome is only recorded.
            Want::Refusal { .. } => true,
        };
        if !count_ok {
            let should = match &want {
                Want::Plaintext(_) => "accept the header".to_string(),
                refusal => refusal.describe(),
            };
            self.mismatch(v, form, "count_stanzas", &should, show(&counted));
        }
        self.report.push(format!(
            "{:<34} {:<15} {form:<21} decrypt_bytes {} | count_stanzas {}",
            v.name,
            v.expect.name(),
            outcomes.join(" / "),
            show(&counted)
        ));
    }

    /// A binary vector as it is: byreis never reads binary age files.
    fn binary(&mut self, v: &Vector, id: &AgeIdentity) {
        let form = "binary, as vendored";
        let want = if v.age_file.len() > MAX_FILE_BYTES {
            too_large()
        } else {
            Want::Refusal {
                what: "NotArmored: byreis reads only armored files",
                is: not_armored,
            }
        };
        let got =
            agefile::decrypt_bytes(&v.age_file, id, None).map(|p| hex(&Sha256::digest(&p[..])));
        if !want.met_by(&got) {
            self.mismatch(v, form, "decrypt_bytes", &want.describe(), show(&got));
        }
        let counted = agefile::count_stanzas(&v.age_file);
        if !matches!((&want, &counted), (Want::Refusal { is, .. }, Err(e)) if is(e)) {
            self.mismatch(v, form, "count_stanzas", &want.describe(), show(&counted));
        }
        self.report.push(format!(
            "{:<34} {:<15} {form:<21} decrypt_bytes {} | count_stanzas {}",
            v.name,
            v.expect.name(),
            show(&got),
            show(&counted)
        ));
    }
}

#[test]
fn cctv_age_vectors_through_the_read_path() {
    let entries = fs::read_dir(DIR)
        .unwrap_or_else(|e| panic!("{DIR}: {e} (the vendored CCTV vectors are missing)"));
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !NOT_VECTORS.contains(&n.as_str()))
        .collect();
    names.sort();
    assert_eq!(
        names.len(),
        VENDORED,
        "{DIR} holds {} vector files; SOURCE.md documents {VENDORED}",
        names.len()
    );

    let mut run = Run::default();
    let mut checked = 0;
    for name in &names {
        let v = parse_vector(name, &fs::read(Path::new(DIR).join(name)).unwrap());
        let id = identity(&v);
        if v.armored {
            run.armored(&v, "armored, as vendored", &v.age_file, &id);
        } else {
            run.binary(&v, &id);
            run.armored(&v, "armored by this test", &armor(&v.age_file), &id);
        }
        checked += 1;
    }

    if std::env::var_os("BYREIS_CCTV_REPORT").is_some() {
        println!("{}", run.report.join("\n"));
    }
    assert!(
        checked >= VENDORED,
        "only {checked} CCTV vectors were checked; {VENDORED} are vendored"
    );
    assert!(
        run.mismatches.is_empty(),
        "{} disagreement(s) between the CCTV vectors and byreis ({checked} vectors):\n{}",
        run.mismatches.len(),
        run.mismatches.join("\n")
    );
}
