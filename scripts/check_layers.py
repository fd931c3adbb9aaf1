#!/usr/bin/env python3
"""Checks the import structure of the crate's top-level modules (src/).

Every file of src/ belongs to a top-level module (src/spawn/child.rs to `spawn`). An import is
a path through `crate::`, `self::` or `super::` (in a `use` tree or anywhere in the code) that
leads from a file of one module into another, or a name the crate root re-exports from another
module (`crate::Popen` leads to `popen`). Two checks:

1. no cycle among the top-level modules;
2. if ARCHITECTURE.md holds a fenced block of type `layers` — one line per layer, bottom layer
   first, the modules of a layer separated by spaces, `#` starts a comment — every module is in
   exactly one layer and imports only from its own layer or the layers below.

Prints each cycle and each upward import with the file and line behind it, and exits 1 if
there is any; 2 if the layer table is malformed. Usage: scripts/check_layers.py [-v] [ROOT]
"""

import argparse
import os
import re
import sys
from collections import defaultdict

TOKEN = re.compile(r"""
    (?P<skip> \s+ | //[^\n]* )
  | (?P<block> /\* )
  | (?P<str> b?r(?P<hashes>\#*)" )
  | (?P<quoted> b?"(?:\\.|[^"\\])*" | b?'(?:\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^'\\])' )
  | (?P<lifetime> '[A-Za-z_]\w* )
  | (?P<ident> (?:r\#)?[A-Za-z_]\w* )
  | (?P<punct> :: | [^\s\w] )
""", re.VERBOSE | re.DOTALL)


def tokens(text):
    """(token, line) pairs of Rust source, without comments, literals and lifetimes."""
    pos, line = 0, 1
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if m is None:  # a stray character (e.g. a digit run): skip it
            pos += 1
            continue
        end = m.end()
        if m.group("block"):  # nested block comments
            depth = 1
            while depth and end < len(text):
                if text.startswith("/*", end):
                    depth, end = depth + 1, end + 2
                elif text.startswith("*/", end):
                    depth, end = depth - 1, end + 2
                else:
                    end += 1
        elif m.group("str"):  # raw string: up to the quote with as many hashes
            close = text.find('"' + m.group("hashes"), end)
            end = len(text) if close < 0 else close + 1 + len(m.group("hashes"))
        elif m.group("ident") or m.group("punct"):
            yield m.group(), line
        line += text.count("\n", pos, end)
        pos = end


def use_paths(toks, i):
    """Expands the `use` tree starting at toks[i]: ([(segments, line)], index after the `;`)."""
    out = []

    def tree(i, prefix):
        segs = list(prefix)
        while i < len(toks) and (toks[i][0] == "::" or re.match(r"\w", toks[i][0])):
            if toks[i][0] == "as":  # kept as a last segment: `as`, then the alias
                segs += ["as", toks[i + 1][0]]
                i += 1
            elif toks[i][0] != "::":
                segs.append(toks[i][0])
            i += 1
        if i < len(toks) and toks[i][0] == "{":
            i += 1
            while toks[i][0] != "}":
                i = tree(i, segs)
                if toks[i][0] == ",":
                    i += 1
            return i + 1
        if i < len(toks) and toks[i][0] == "*":
            i += 1
        out.append((segs, toks[i - 1][1]))
        return i

    i = tree(i, [])
    while i < len(toks) and toks[i][0] != ";":
        i += 1
    return out, i + 1


def module_of(rel):
    """('spawn', ['spawn', 'child']) for 'spawn/child.rs'; (None, []) for the crate root."""
    parts = rel[:-3].split(os.sep)
    if parts[-1] == "mod":
        parts.pop()
    if parts in (["lib"], ["main"]):
        return None, []
    return parts[0], parts


def paths_of(toks):
    """Every (segments, line, inline-module stack) of a crate-relative path in a file."""
    i, depth, inline = 0, 0, []
    while i < len(toks):
        tok, line = toks[i]
        if tok == "use":
            found, i = use_paths(toks, i + 1)
            for segs, ln in found:
                yield segs, ln, [m for m, _ in inline]
            continue
        if tok == "mod" and i + 2 < len(toks) and toks[i + 2][0] == "{":
            inline.append((toks[i + 1][0], depth))
        elif tok == "{":
            depth += 1
        elif tok == "}":
            depth -= 1
            if inline and inline[-1][1] == depth:
                inline.pop()
        elif (tok in ("crate", "super", "self") and i + 1 < len(toks) and toks[i + 1][0] == "::"
              and (i == 0 or toks[i - 1][0] not in ("$", "::"))):
            segs = [tok]
            while i + 2 < len(toks) and toks[i + 1][0] == "::" and re.match(r"\w", toks[i + 2][0]):
                segs.append(toks[i + 2][0])
                i += 2
            yield segs, line, [m for m, _ in inline]
        i += 1


def absolute(segs, here):
    """The path from the crate root, or None for a path outside the crate."""
    if segs[0] == "crate":
        return segs[1:]
    if segs[0] == "self":
        return here + segs[1:]
    if segs[0] == "super":
        up = 0
        while up < len(segs) and segs[up] == "super":
            up += 1
        return here[:max(len(here) - up, 0)] + segs[up:]
    return None


def read_layers(root):
    """{module: layer index} from ARCHITECTURE.md's ```layers block, or None without one."""
    try:
        with open(os.path.join(root, "ARCHITECTURE.md")) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    m = re.search(r"^```layers[ \t]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    if m is None:
        return None
    layer_of = {}
    for n, line in enumerate(l for l in m.group(1).splitlines() if l.split("#")[0].strip()):
        for module in line.split("#")[0].split():
            if module in layer_of:
                print("ARCHITECTURE.md: %s is in two layers" % module, file=sys.stderr)
                sys.exit(2)
            layer_of[module] = n
    return layer_of


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=os.path.join(os.path.dirname(__file__), ".."))
    parser.add_argument("-v", "--verbose", action="store_true", help="print every edge")
    opts = parser.parse_args()
    src = os.path.join(opts.root, "src")

    files = {}  # path relative to src -> tokens
    for dirpath, _, names in os.walk(src):
        for name in sorted(names):
            if name.endswith(".rs"):
                path = os.path.join(dirpath, name)
                with open(path) as f:
                    files[os.path.relpath(path, src)] = list(tokens(f.read()))
    modules = {module_of(rel)[0] for rel in files} - {None}

    reexported = {}  # name at the crate root (a `use` of lib.rs) -> the module it comes from
    for segs, _, inline in paths_of(files.get("lib.rs", [])):
        segs = segs[1:] if segs[0] == "crate" else segs
        if not inline and len(segs) > 1 and segs[0] in modules:
            reexported[segs[-1]] = segs[0]

    edges = defaultdict(dict)  # (from, to) -> {file: first line}
    for rel, toks in sorted(files.items()):
        own, here = module_of(rel)
        if own is None:
            continue
        for segs, line, inline in paths_of(toks):
            path = absolute(segs, here + inline)
            if not path:
                continue
            target = path[0] if path[0] in modules else reexported.get(path[0])
            if target and target != own:
                edges[(own, target)].setdefault(os.path.join("src", rel), line)

    def where(edge):
        return ", ".join("%s:%d" % fl for fl in sorted(edges[edge].items()))

    if opts.verbose:
        for edge in sorted(edges):
            print("%s -> %s  (%s)" % (*edge, where(edge)))

    # Strongly connected components (Tarjan): each one with more than one module is a cycle.
    succ = defaultdict(set)
    for a, b in edges:
        succ[a].add(b)
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(succ[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.add(w)
                if w == v:
                    break
            if len(scc) > 1:
                cycles.append(sorted(scc))

    for v in sorted(modules):
        if v not in index:
            visit(v)
    failed = False
    for scc in cycles:
        failed = True
        print("cycle: " + " <-> ".join(scc))
        for edge in sorted(e for e in edges if e[0] in scc and e[1] in scc):
            print("  %s -> %s  (%s)" % (*edge, where(edge)))

    layer_of = read_layers(opts.root)
    if layer_of is None:
        print("no ```layers block in ARCHITECTURE.md: layers not checked")
    else:
        unknown = sorted(set(layer_of) - modules)
        if unknown:
            print("ARCHITECTURE.md names modules that do not exist: " + ", ".join(unknown))
            return 2
        for module in sorted(modules - set(layer_of)):
            failed = True
            print("module %s is in no layer of ARCHITECTURE.md" % module)
        for edge in sorted(edges):
            a, b = edge
            if a in layer_of and b in layer_of and layer_of[a] < layer_of[b]:
                failed = True
                print("upward import: %s (layer %d) -> %s (layer %d)  (%s)"
                      % (a, layer_of[a] + 1, b, layer_of[b] + 1, where(edge)))
    print("%d top-level modules, %d edges, %d cycles" % (len(modules), len(edges), len(cycles)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
