#!/usr/bin/env python3
"""Licence check: every crate the shipped binary (wxkit) or a library crate depends on — normal and build
dependencies, for Linux x86-64, dev-dependencies left out — must be under a licence that allows distributing wxkit
under MIT OR Apache-2.0. The allowed licences and the per-crate exceptions (each with its reason) are in
.ci/licenses.toml; an SPDX expression passes when it can be satisfied with allowed licences alone.

    python3 scripts/check-licenses.py            # check the lock file's graph
    python3 scripts/check-licenses.py --self-test  # show that a disallowed licence fails
"""
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".ci" / "licenses.toml"


def tokens(expr):
    return re.findall(r"\(|\)|[A-Za-z0-9.+\-]+", expr.replace("/", " OR "))


def satisfiable(expr, allowed):
    """Whether the SPDX expression can be met with allowed licences (OR: one side; AND: both; WITH: the base)."""
    toks = tokens(expr)
    pos = 0

    def primary():
        nonlocal pos
        if pos >= len(toks):
            raise ValueError(f"truncated licence expression {expr!r}")
        tok = toks[pos]
        pos += 1
        if tok == "(":
            value = disjunction()
            if pos >= len(toks) or toks[pos] != ")":
                raise ValueError(f"unbalanced licence expression {expr!r}")
            pos += 1
            return value
        value = tok.rstrip("+") in allowed or tok in allowed
        if pos < len(toks) and toks[pos] == "WITH":
            pos += 2  # an exception only widens what the base licence allows
        return value

    def conjunction():
        nonlocal pos
        value = primary()
        while pos < len(toks) and toks[pos] == "AND":
            pos += 1
            value = primary() and value
        return value

    def disjunction():
        nonlocal pos
        value = conjunction()
        while pos < len(toks) and toks[pos] == "OR":
            pos += 1
            value = conjunction() or value
        return value

    result = disjunction()
    if pos != len(toks):
        raise ValueError(f"cannot read licence expression {expr!r}")
    return result


def shipped_packages(metadata, roots):
    packages = {p["id"]: p for p in metadata["packages"]}
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
    by_name = {p["name"]: p["id"] for p in metadata["packages"] if p["id"] in metadata["workspace_members"]}
    todo = [by_name[r] for r in roots]
    seen = set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for dep in nodes[pid]["deps"]:
            kinds = {k["kind"] for k in dep["dep_kinds"]}
            if kinds & {None, "build"}:
                todo.append(dep["pkg"])
    return [packages[pid] for pid in seen]


def check(config, packages):
    allowed = set(config["allowed"])
    exceptions = config.get("exceptions", {})
    failures = []
    for p in sorted(packages, key=lambda p: p["name"]):
        if p["source"] is None:
            continue  # our own crates: MIT OR Apache-2.0 (checked by the workspace's license field)
        licence = p.get("license")
        if p["name"] in exceptions:
            if exceptions[p["name"]].get("license") != licence:
                failures.append(f"{p['name']} {p['version']}: the exception is for {exceptions[p['name']].get('license')!r}, the crate says {licence!r}")
            continue
        if not licence:
            failures.append(f"{p['name']} {p['version']}: no licence field (add an exception with its reason)")
            continue
        try:
            ok = satisfiable(licence, allowed)
        except ValueError as e:
            failures.append(f"{p['name']} {p['version']}: {e}")
            continue
        if not ok:
            failures.append(f"{p['name']} {p['version']}: {licence} is not allowed")
    return failures


def main():
    config = tomllib.loads(CONFIG.read_text())
    if "--self-test" in sys.argv:
        allowed = set(config["allowed"])
        assert satisfiable("MIT OR Apache-2.0", allowed)
        assert satisfiable("(MIT OR Apache-2.0) AND Unicode-3.0", allowed)
        assert satisfiable("Apache-2.0 WITH LLVM-exception OR MIT", allowed)
        assert satisfiable("MIT/Apache-2.0", allowed)
        assert not satisfiable("GPL-3.0-only", allowed)
        assert not satisfiable("MIT AND GPL-2.0-or-later", allowed)
        assert satisfiable("MIT OR GPL-2.0-or-later", allowed)
        fake = [{"name": "copyleft-thing", "version": "1.0.0", "source": "registry", "license": "AGPL-3.0-only"}]
        assert check(config, fake), "a disallowed licence fails the check"
        print("ok   the licence check refuses AGPL-3.0-only and GPL in an AND; accepts allowed ORs")
        return 0
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", "x86_64-unknown-linux-gnu"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout
    )
    packages = shipped_packages(metadata, config["roots"])
    failures = check(config, packages)
    for f in failures:
        print(f"FAIL {f}")
    licences = sorted({p.get("license") or "?" for p in packages if p["source"] is not None})
    print(f"{len(packages)} crates shipped by {', '.join(config['roots'])}; licences seen: {'; '.join(licences)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
