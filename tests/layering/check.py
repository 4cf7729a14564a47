#!/usr/bin/env python3
"""Layering check: fails on an import cycle between a crate's top-level modules, and on a
leaf crate that depends (directly or not) on the core crate.

Module edges come from every `crate::NAME` path in a module's files, `use crate::{a, b::c}`
groups included, so a fully qualified path cannot hide an edge that a `use` line would show.
Crate edges come from `cargo metadata`.
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The core crate and the binary's crate: everything else in the workspace that is not a
# test/proto/client crate is a leaf and must not reach these.
CORE = {"mcpd"}
NOT_LEAVES = {"mcpd", "mcpd-tests"}


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def group_heads(body):
    """Top-level names inside a `use crate::{...}` group: `a, b::c, d::{e, f}` -> a, b, d."""
    heads, depth, cur = [], 0, ""
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            heads.append(cur)
            cur = ""
            continue
        if depth == 0:
            cur += ch
    heads.append(cur)
    out = []
    for h in heads:
        m = re.match(r"\s*([a-z_][a-z0-9_]*)", h)
        if m and m.group(1) not in ("self",):
            out.append(m.group(1))
    return out


def module_of(src, path):
    rel = os.path.relpath(path, src)
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def module_edges(src):
    edges = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            mod = module_of(src, path)
            if mod in ("lib", "main"):
                continue
            text = strip_comments(open(path, encoding="utf-8").read())
            deps = set(re.findall(r"\bcrate::([a-z_][a-z0-9_]*)", text))
            for body in re.findall(r"\bcrate::\{(.*?)\}\s*;", text, flags=re.S):
                deps.update(group_heads(body))
            deps.discard(mod)
            edges.setdefault(mod, set()).update(deps)
    mods = set(edges)
    return {m: {d for d in ds if d in mods} for m, ds in edges.items()}


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def path_in(edges, comp):
    """One concrete cycle inside a component, for the message."""
    start = comp[0]
    members = set(comp)
    prev = {start: None}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(edges[v] & members):
                if w == start:
                    chain, x = [start], v
                    while x is not None and x != start:
                        chain.append(x)
                        x = prev[x]
                    return " -> ".join([start] + list(reversed(chain[1:])) + [start])
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return " , ".join(comp)


def main():
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout
    )
    members = {p["name"]: p for p in meta["packages"]}
    problems = []
    # Crate layering: no leaf reaches the core, directly or through another workspace crate.
    deps = {n: {d["name"] for d in p["dependencies"] if d["name"] in members and d.get("kind") in (None, "build")}
            for n, p in members.items()}

    def reaches(n, seen=None):
        seen = seen or set()
        for d in deps[n]:
            if d in CORE:
                return [n, d]
            if d not in seen:
                seen.add(d)
                r = reaches(d, seen)
                if r:
                    return [n] + r
        return None

    for n in sorted(members):
        if n in NOT_LEAVES:
            continue
        r = reaches(n)
        if r:
            problems.append(f"leaf crate {n} depends on the core: {' -> '.join(r)}")
    # Module cycles inside every workspace crate.
    for n, p in sorted(members.items()):
        for t in p["targets"]:
            if "lib" not in t["kind"]:
                continue
            src = os.path.dirname(t["src_path"])
            edges = module_edges(src)
            for comp in cycles(edges):
                problems.append(f"import cycle in {n}: {path_in(edges, comp)} (modules {', '.join(comp)})")
    if problems:
        print("layering check failed:")
        for p in problems:
            print("  " + p)
        return 1
    print(f"layering check: {len(members)} crates, no leaf reaches the core, no module cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
