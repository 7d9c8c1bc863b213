#!/usr/bin/env python3
"""The layers of byreis, checked (issue 15, README "Layout").

Every module of the three crates (`crates/byreis-core`, `crates/byreis-github`,
and the cli in `src/`) belongs to one layer; a module may use modules of
its own layer and of the layers below it, never above:

    basics -> crypto -> formats -> local -> verify -> read -> write   (the core)
    edge: remote, editor, github, pulls (processes, network)   cli: the terminal

The core (basics .. write) must not use the edge or the cli, must not name
clap, octocrab, tokio or dialoguer, spawn a process, read an environment
variable or print. What the code still does against these rules is listed,
line by line, in scripts/layers-known.txt: a ratchet. The check fails on a
violation that is not listed (a new one) and on a listed one that is gone
(remove its line, so it cannot come back). Run by .ci/run.
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
SOURCES = [root / "crates" / "byreis-core" / "src", root / "crates" / "byreis-github" / "src", root / "src"]

LAYERS = {
    "basics": ["names", "notice", "dotenv", "import", "secret", "yaml", "diag", "par", "failpoint", "timing"],
    "crypto": ["keys", "agent", "sshsig", "agefile"],
    "formats": ["documents", "signed", "audit", "request_doc"],
    "local": ["git", "registry", "trust", "transport"],
    "verify": ["verify"],
    "read": ["diff", "doctor", "history", "exposure", "exec", "export", "value_age"],
    "write": ["store", "rotation", "proposal", "roster_approval", "submission", "request"],
    "edge": ["remote", "editor", "github", "pulls"],
    "cli": ["cli"],
}
ORDER = list(LAYERS)
CORE = ORDER[: ORDER.index("write") + 1]
layer_of = {m: layer for layer, mods in LAYERS.items() for m in mods}

FOREIGN = ["clap", "octocrab", "tokio", "dialoguer"]
RULES = [
    ("spawns a process", re.compile(r"\bCommand::new\b")),
    ("reads the environment", re.compile(r"\benv::var(?:_os)?\b|\benv::vars\b")),
    ("prints", re.compile(r"\be?print(?:ln)?!")),
]


def module_files():
    for src in SOURCES:
        for p in sorted(src.rglob("*.rs")):
            rel = p.relative_to(src)
            if rel.parts[0] == "cli":
                yield "cli", p
            elif rel.name not in ("lib.rs", "main.rs", "mod.rs"):
                yield p.stem, p


def code_only(text):
    """The text without comments and without `#[cfg(test)] mod tests`."""
    text = re.sub(r"//[^\n]*", "", text)
    while cut := re.search(r"#\[cfg\(test\)\]\s*mod \w+\s*\{", text):
        depth, i = 1, cut.end()
        while depth and i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        text = text[: cut.start()] + text[i:]
    return text


found = set()
unknown = []
for mod, path in module_files():
    layer = layer_of.get(mod)
    if layer is None:
        unknown.append(f"{path.relative_to(root)}: module {mod} has no layer in scripts/check-layers.py")
        continue
    text = code_only(path.read_text())
    used = set(re.findall(r"\bcrate::([a-z_]+)", text))
    for dep in sorted(used - {mod}):
        dl = layer_of.get(dep)
        if dl is None or dl == layer:
            continue
        if ORDER.index(dl) > ORDER.index(layer) or (layer in CORE and dl not in CORE):
            found.add(f"{mod} ({layer}) uses {dep} ({dl})")
    if layer in CORE:
        for name in FOREIGN:
            if re.search(rf"\b{name}::", text):
                found.add(f"{mod} ({layer}) names {name}")
        for what, pattern in RULES:
            if pattern.search(text):
                found.add(f"{mod} ({layer}) {what}")

# Each crate holds exactly its layers, and the core's manifest names none of
# the crates the core must not use (cargo then enforces the direction).
CRATE_LAYERS = {
    "byreis-core": set(CORE),
    "byreis-github": {"edge"},
}
for mod, path in module_files():
    for crate, layers in CRATE_LAYERS.items():
        if f"crates/{crate}/" in path.as_posix() and layer_of.get(mod) not in layers:
            unknown.append(f"{path.relative_to(root)}: module {mod} ({layer_of.get(mod)}) does not belong in {crate}")
core_manifest = (root / "crates" / "byreis-core" / "Cargo.toml").read_text()
deps = re.search(r"^\[dependencies\]\n(.*?)(?:^\[|\Z)", core_manifest, re.S | re.M).group(1)
for name in FOREIGN + ["byreis-github", "byreis"]:
    if re.search(rf"^{re.escape(name)}\b", deps, re.M):
        unknown.append(f"crates/byreis-core/Cargo.toml: the core depends on {name}")

known_path = root / "scripts" / "layers-known.txt"
known = {
    line.strip()
    for line in known_path.read_text().splitlines()
    if line.strip() and not line.startswith("#")
}
new = sorted(found - known)
gone = sorted(known - found)
if unknown or new or gone:
    for line in unknown:
        print(line)
    for line in new:
        print(f"new layer violation: {line}")
    for line in gone:
        print(f"fixed, remove it from scripts/layers-known.txt: {line}")
    sys.exit(1)
print(f"check-layers: {len(layer_of)} modules in {len(LAYERS)} layers; {len(known)} known violations left (scripts/layers-known.txt)")
