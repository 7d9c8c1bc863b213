#!/usr/bin/env python3
"""Every test a document names must exist.

SECURITY.md, README.md and docs/ back their claims by naming tests, as
`tests/FILE.rs` (or a source file: `src/…`, `crates/CRATE/src/…`) followed by one or more `test_name`s.
This checks that each named test is a `fn` in the file named before it, so
a renamed or deleted test cannot leave a claim pointing at nothing. Run by
.ci/run; exits 1 and lists every dangling reference.
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
docs = [root / "SECURITY.md", root / "README.md", *sorted((root / "docs").rglob("*.md"))]
ticked = re.compile(r"`([^`\n]+)`")
source = re.compile(r"^(?:tests|src|crates/[\w-]+/src)/[\w/]+\.rs$")
ident = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+){2,}$")

# What may stand between a file and its test names: `tests/a.rs` `x`,
# `y` and `z`; `tests/b.rs`, among them `w`.
gap = re.compile(r"^[\s,;:]*(?:(?:and|or|among them|then)[\s,;:]*)?$")

missing, checked = [], 0
for doc in docs:
    text = doc.read_text()
    current, end = None, 0
    for m in ticked.finditer(text):
        token = m.group(1)
        if source.match(token):
            current, end = token, m.end()
            continue
        if current is None or not gap.match(text[end : m.start()]):
            current = None
            continue
        end = m.end()
        if not ident.match(token):
            current = None
            continue
        checked += 1
        path = root / current
        body = path.read_text() if path.exists() else ""
        if not re.search(rf"\bfn {re.escape(token)}\s*[<(]", body):
            line = text.count("\n", 0, m.start()) + 1
            missing.append(f"{doc.relative_to(root)}:{line}: {current} has no fn {token}")

if missing:
    print("\n".join(missing))
    print(f"check-doc-tests: {len(missing)} of {checked} named tests do not exist", file=sys.stderr)
    sys.exit(1)
print(f"check-doc-tests: all {checked} tests named in the docs exist")
