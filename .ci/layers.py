#!/usr/bin/env python3
"""The layering of host/src, checked: which file imports which (through
`use crate::…`, `super::…` and inline `crate::…` paths), the import circles
among files (strongly connected components), and the floors that must not
look up.

Usage: .ci/layers.py [--report]   (exit 1 when a rule is broken)
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "host", "src")

# Folders that may import only the ones listed (besides themselves and std /
# external crates): the floors of the house.
FLOORS = {
    "model": set(),
    "storage": {"model", "config"},
    # The application: below every adapter (server/, console/, the CLI).
    "app": {"model", "config", "storage", "policy", "wasm", "capabilities", "audit", "workflow", "call", "plugins", "net", "runtime"},
}

# The adapters' crates, and the only places that may name them: what a call
# is does not depend on how it came in, and the REST API's description (the
# OpenAPI document) is the HTTP adapter's alone. server/ is the HTTP adapter
# (REST, MCP); console/ is the operator's HTML pages, served by axum too.
# The `http` crate's request and response types are also the outbound
# client's vocabulary: a connector's requests (capabilities/), OCI pulls,
# the approval webhook and the devkit's calls name them for that.
ADAPTER_CRATES = {
    "utoipa": ("server",),
    "rmcp": ("server",),
    "axum": ("server", "console"),
    "askama": ("server", "console"),
    "http": ("server", "console", "capabilities", "plugins/oci", "app/approvals/webhook", "devkit"),
}

# Circles tolerated for now (none: issue 31 broke the last). Any other
# circle, or one of these grown, fails the check.
KNOWN_CIRCLES = []


def module_files():
    """module path (tuple) -> file path, for every .rs file under src."""
    files = {}
    for dirpath, _, names in os.walk(ROOT):
        for name in names:
            if not name.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), ROOT)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            files[tuple(parts)] = rel
    return files


def strip_comments(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def use_paths(text):
    """Every path a file names: the expansions of its `use` trees and its
    inline `crate::`/`super::` paths."""
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        paths.extend(expand(m.group(1).replace("\n", " ")))
    for m in re.finditer(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)", text):
        paths.append(m.group(1))
    return paths


def expand(tree):
    tree = re.sub(r"\s+", "", tree)
    tree = re.sub(r"\bas[A-Za-z_0-9]+", "", tree)
    if "{" not in tree:
        return [tree]
    head, rest = tree.split("{", 1)
    body = rest[: rest.rfind("}")]
    items, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    items.append(cur)
    out = []
    for item in items:
        if item:
            out.extend(head + p for p in expand(item))
    return out


def resolve(path, here, files, is_mod):
    parts = path.split("::")
    if parts[0] == "crate":
        base = []
        parts = parts[1:]
    elif parts[0] in ("super", "self"):
        base = list(here)
        while parts and parts[0] in ("super", "self"):
            if parts[0] == "super":
                base = base[:-1]
            parts = parts[1:]
    else:
        return None
    full = base + parts
    for n in range(len(full), 0, -1):
        if tuple(full[:n]) in files:
            return tuple(full[:n])
    return None


def graph():
    files = module_files()
    edges = {m: set() for m in files}
    for mod, rel in files.items():
        text = strip_comments(open(os.path.join(ROOT, rel)).read())
        # A file's unit tests (its trailing `#[cfg(test)] mod tests`) are not
        # part of the layering; their `super::*` is the file itself.
        text = re.split(r"#\[cfg\(test\)\]\n(?:pub(?:\([a-z]+\))? )?mod tests", text, maxsplit=1)[0]
        is_mod = rel.endswith(("mod.rs", "lib.rs", "main.rs"))
        for path in use_paths(text):
            target = resolve(path, mod, files, is_mod)
            if target and target != mod and target[: len(mod)] != mod:
                edges[mod].add(target)
    # A parent module file only declares its children: not an import.
    for mod in edges:
        edges[mod] = {t for t in edges[mod] if not (len(t) == len(mod) + 1 and t[:-1] == mod)}
    return files, edges


def circles(edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
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

    for v in edges:
        if v not in index:
            visit(v)
    return out


def main():
    files, edges = graph()
    name = lambda m: "/".join(m) or "lib"
    broken = False
    found = circles(edges)
    for comp in found:
        names = {name(m) for m in comp}
        known = names in KNOWN_CIRCLES
        broken |= not known
        print(f"import circle of {len(comp)} files{' (known)' if known else ''}: {', '.join(sorted(names))}")
    for floor, allowed in FLOORS.items():
        for mod, targets in edges.items():
            if mod[:1] != (floor,):
                continue
            for t in sorted(targets):
                if t[0] != floor and t[0] not in allowed:
                    broken = True
                    print(f"{name(mod)} imports {name(t)}: {floor}/ may import only {sorted(allowed) or 'nothing'}")
    for mod, rel in files.items():
        text = strip_comments(open(os.path.join(ROOT, rel)).read())
        # A module of the file's own named like a crate (`mod http;`) is
        # not the crate: `use http::…` then means the module.
        own = set(re.findall(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+([a-z_]+)\s*;", text, flags=re.M))
        for crate, allowed in ADAPTER_CRATES.items():
            if crate in own or any(name(mod) == a or name(mod).startswith(a + "/") for a in allowed):
                continue
            if re.search(rf"(?<![\w:]){crate}::", text):
                broken = True
                print(f"{name(mod)} names {crate}: only {', '.join(a + '/' for a in allowed)} may")
    if "--report" in sys.argv or not broken:
        print(f"{len(files)} files, {sum(map(len, edges.values()))} imports, {len(found)} circles")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
