//! A dotenv file read as python-dotenv (1.x, `dotenv_values`) reads it,
//! for `byreis import --format dotenv` (issue 16). Its grammar, ported
//! from python-dotenv's `parser.py`: `[export ]KEY=VALUE` bindings, blank
//! and `#` comment lines; a value unquoted (up to a ` #` comment, trailing
//! space stripped), in `'…'` (`\\` and `\'` decoded) or in `"…"` (`\\`,
//! `\'`, `\"`, `\a \b \f \n \r \t \v` decoded), quoted values spanning
//! lines. Where python-dotenv would warn and skip a line, or expand a
//! `${VAR}` from the environment of whoever runs it, byreis refuses the
//! whole file instead: an import never drops or guesses a value.

use zeroize::Zeroizing;

use crate::secret::SecretValue;
use crate::yaml::Secrets;

/// Why a dotenv file is refused; never holds a value.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {what}")]
pub struct DotenvError {
    pub line: usize,
    pub what: String,
}

/// Python's `str.isspace()`, which the `\s` of python-dotenv's patterns
/// matches (it includes U+001C..U+001F, which Rust's does not).
fn space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn inline_space(c: char) -> bool {
    space(c) && c != '\n' && c != '\r'
}

struct Reader<'a> {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    _text: &'a str,
}

impl Reader<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }
    fn skip_while(&mut self, f: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&f) {
            self.bump();
        }
    }
    fn starts_with(&self, s: &str) -> bool {
        s.chars()
            .enumerate()
            .all(|(i, c)| self.chars.get(self.pos + i) == Some(&c))
    }
    fn fail<T>(&self, what: impl Into<String>) -> Result<T, DotenvError> {
        Err(DotenvError {
            line: self.line,
            what: what.into(),
        })
    }
}

/// A quoted value's body up to its closing `quote`, where `\` + `quote`
/// does not close it (python-dotenv's `((?:\\Q|[^Q])*)Q`).
fn quoted(r: &mut Reader, quote: char) -> Result<Zeroizing<String>, DotenvError> {
    let start = r.line;
    r.bump();
    let mut raw = Zeroizing::new(String::new());
    loop {
        match r.peek() {
            None => {
                return Err(DotenvError {
                    line: start,
                    what: format!("a {quote}-quoted value is not closed"),
                })
            }
            Some('\\') if r.chars.get(r.pos + 1) == Some(&quote) => {
                raw.push('\\');
                raw.push(quote);
                r.bump();
                r.bump();
            }
            Some(c) if c == quote => {
                r.bump();
                return Ok(raw);
            }
            Some(c) => {
                raw.push(c);
                r.bump();
            }
        }
    }
}

/// python-dotenv's `decode_escapes`: each `\` + one of `escapes` left to
/// right, anything else kept as it is.
fn decode(raw: &str, escapes: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(raw.len()));
    let mut it = raw.chars().peekable();
    while let Some(c) = it.next() {
        match (c, it.peek().copied()) {
            ('\\', Some(n)) if escapes.contains(n) => {
                it.next();
                out.push(match n {
                    'a' => '\u{7}',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'v' => '\u{b}',
                    other => other,
                });
            }
            _ => out.push(c),
        }
    }
    out
}

/// Whether python-dotenv's interpolation (on by default, in every
/// quoting) would replace part of `v`: `${NAME}` or `${NAME:-default}`.
fn expands(v: &str) -> bool {
    let mut rest = v;
    while let Some(i) = rest.find("${") {
        rest = &rest[i + 2..];
        if rest.contains('}') {
            return true;
        }
    }
    false
}

/// The secrets of a dotenv file. Refused: a line python-dotenv cannot
/// parse, a name without `=`, a name given twice, a value it would expand.
pub fn parse(text: &str) -> Result<Secrets, DotenvError> {
    // Python reads the file in text mode: every line ending becomes `\n`.
    let normal = Zeroizing::new(text.replace("\r\n", "\n").replace('\r', "\n"));
    let mut r = Reader {
        chars: normal.chars().collect(),
        pos: 0,
        line: 1,
        _text: text,
    };
    let mut out = Secrets::new();
    let result = (|| {
        loop {
            r.skip_while(space);
            if r.peek().is_none() {
                return Ok(());
            }
            let line = r.line;
            if r.starts_with("export") && r.chars.get(r.pos + 6).is_some_and(|c| inline_space(*c)) {
                r.pos += 6;
                r.skip_while(inline_space);
            }
            let key = match r.peek() {
                Some('#') => None,
                Some('\'') => {
                    r.bump();
                    let mut k = String::new();
                    while let Some(c) = r.peek() {
                        if c == '\'' {
                            break;
                        }
                        k.push(c);
                        r.bump();
                    }
                    if r.peek() != Some('\'') || k.is_empty() {
                        return r.fail("a '-quoted name is not closed");
                    }
                    r.bump();
                    Some(k)
                }
                _ => {
                    let mut k = String::new();
                    while let Some(c) = r.peek() {
                        if c == '=' || c == '#' || space(c) {
                            break;
                        }
                        k.push(c);
                        r.bump();
                    }
                    if k.is_empty() {
                        return r.fail("expected NAME=value");
                    }
                    Some(k)
                }
            };
            r.skip_while(inline_space);
            let value = if r.peek() == Some('=') {
                r.bump();
                r.skip_while(inline_space);
                Some(match r.peek() {
                    Some('\'') => decode(&quoted(&mut r, '\'')?, "\\'"),
                    Some('"') => decode(&quoted(&mut r, '"')?, "\\'\"abfnrtv"),
                    None | Some('\n') => Zeroizing::new(String::new()),
                    Some(_) => {
                        let mut part = Zeroizing::new(String::new());
                        while let Some(c) = r.peek() {
                            if c == '\n' {
                                break;
                            }
                            part.push(c);
                            r.bump();
                        }
                        // re.sub(r"\s+#.*", "", part).rstrip()
                        let cut = part.char_indices().find_map(|(i, c)| {
                            (space(c) && part[i..].trim_start_matches(space).starts_with('#'))
                                .then_some(i)
                        });
                        let kept = match cut {
                            Some(i) => &part[..i],
                            None => &part[..],
                        };
                        Zeroizing::new(kept.trim_end_matches(space).to_string())
                    }
                })
            } else {
                None
            };
            // An optional comment, then the end of the line.
            r.skip_while(inline_space);
            if r.peek() == Some('#') {
                r.skip_while(|c| c != '\n');
            }
            match r.peek() {
                None | Some('\n') => {
                    r.bump();
                }
                Some(_) => {
                    return Err(DotenvError {
                        line,
                        what:
                            "unexpected text after the value (python-dotenv would skip this line)"
                                .into(),
                    })
                }
            }
            let Some(key) = key else { continue };
            let Some(value) = value else {
                return Err(DotenvError {
                    line,
                    what: format!("{key} has no `=` (python-dotenv reads it as no value)"),
                });
            };
            if expands(&value) {
                return Err(DotenvError {
                    line,
                    what: format!("{key}'s value has `${{…}}`, which python-dotenv replaces from the environment of whoever reads the file; byreis does not guess: write the value out, or import it with --format json"),
                });
            }
            if out.contains_key(&key) {
                return Err(DotenvError {
                    line,
                    what: format!("{key} is given twice"),
                });
            }
            out.insert(key, SecretValue::new(value));
        }
    })();
    result.map(|()| out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(text: &str) -> Vec<(String, String)> {
        parse(text)
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect()
    }

    #[test]
    fn reads_as_python_dotenv_reads() {
        let text = "# comment\n\nexport A=plain value # trailing comment\nB='single \\' quote \\\\ x'\nC=\"double \\\"q\\\" \\n \\\\ \\x\"\nD=\"multi\nline\"\n E = spaced \nF=\nG=a#b\r\n";
        assert_eq!(
            get(text),
            vec![
                ("A".into(), "plain value".into()),
                ("B".into(), "single ' quote \\ x".into()),
                ("C".into(), "double \"q\" \n \\ \\x".into()),
                ("D".into(), "multi\nline".into()),
                ("E".into(), "spaced".into()),
                ("F".into(), "".into()),
                ("G".into(), "a#b".into()),
            ]
        );
    }

    #[test]
    fn refuses_what_python_dotenv_would_skip_or_expand() {
        for (text, what) in [
            ("A=\"open\n", "not closed"),
            ("A\n", "has no `=`"),
            ("A=1\nA=2\n", "twice"),
            ("A=${HOME}\n", "replaces from the environment"),
            ("A='x' junk\n", "unexpected text"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(what), "{text:?}: {e}");
        }
    }
}
