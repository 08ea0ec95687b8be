"""The import graph of jcomrl/, experiments/ and benchmarks/, checked against the layering of
docs/DESIGN.md ("Dependencies point one way": envs, mi, nets, data <- algos <- datagen, eval <-
run <- experiments, benchmarks).

Every ``import`` / ``from ... import`` of those packages is read from the source (``ast``), those
inside functions, methods and ``if`` blocks included: an import resolved at call time still
ties the two modules together. ``from a.b import c`` is an edge to ``a.b.c`` when that is a
module, else to ``a.b``. The tool prints

* every import circle: a strongly connected component of more than one module;
* every edge from ``jcomrl`` or ``benchmarks`` into ``experiments`` (the library and the
  benchmarks are usable without the absl entry points);
* every edge from ``jcomrl.data`` (the dataset store the learner reads) into ``jcomrl.algos`` or
  ``jcomrl.datagen`` (the layers above it),

and exits with status 1 if there is any. ``--allow PREFIX`` (repeatable) accepts a circle whose
modules all start with ``PREFIX`` (reported, not failed)::

    python -m tools.import_graph                       # exit 1 on any finding
    python -m tools.import_graph --allow jcomrl.algos  # a circle inside jcomrl/algos is accepted
    python -m tools.import_graph --edges               # also print every edge
"""

from __future__ import annotations

import argparse
import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("jcomrl", "experiments", "benchmarks")
# (importer prefix, imported prefixes it must not reach, why)
FORBIDDEN = (
    ("jcomrl", ("experiments",), "the library imports no entry point"),
    ("benchmarks", ("experiments",), "benchmarks use the library, not the entry points"),
    ("jcomrl.data", ("jcomrl.algos", "jcomrl.datagen"),
     "the dataset store sits below the learners and the data generation"),
)


def module_files(root: str = ROOT) -> dict[str, str]:
  """``{dotted module name: file path}`` of every ``.py`` file under ``PACKAGES``."""
  out = {}
  for pkg in PACKAGES:
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, pkg)):
      dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__pycache__")))
      for name in sorted(filenames):
        if not name.endswith(".py"):
          continue
        rel = os.path.relpath(os.path.join(dirpath, name), root)[:-3].split(os.sep)
        if rel[-1] == "__init__":
          rel = rel[:-1]
        out[".".join(rel)] = os.path.join(dirpath, name)
  return out


def _in_scope(name: str) -> bool:
  return name.split(".")[0] in PACKAGES


def imports_of(module: str, path: str, modules: set[str]) -> set[str]:
  """The in-scope modules ``module`` (its source at ``path``) imports, anywhere in the file."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  is_pkg = os.path.basename(path) == "__init__.py"
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        if _in_scope(alias.name):
          out.add(_existing(alias.name, modules))
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:  # relative: resolved against this module's package
        parts = module.split(".") if is_pkg else module.split(".")[:-1]
        parts = parts[:len(parts) - node.level + 1]
        base = ".".join(parts + ([base] if base else []))
      if not _in_scope(base):
        continue
      for alias in node.names:
        full = f"{base}.{alias.name}"
        out.add(full if full in modules else _existing(base, modules))
  out.discard(module)
  return out


def _existing(name: str, modules: set[str]) -> str:
  """``name`` or its longest prefix that is a module of the tree (``a.b.c`` -> ``a.b``)."""
  parts = name.split(".")
  while parts and ".".join(parts) not in modules:
    parts.pop()
  return ".".join(parts) if parts else name


def graph(root: str = ROOT) -> dict[str, set[str]]:
  """``{module: modules it imports}`` over ``PACKAGES``."""
  files = module_files(root)
  names = set(files)
  return {m: imports_of(m, p, names) & names for m, p in files.items()}


def circles(g: dict[str, set[str]]) -> list[list[str]]:
  """The strongly connected components of more than one module (Tarjan, iterative)."""
  index, low, on_stack, stack, out = {}, {}, set(), [], []
  counter = [0]
  for start in sorted(g):
    if start in index:
      continue
    work = [(start, iter(sorted(g[start])))]
    index[start] = low[start] = counter[0]
    counter[0] += 1
    stack.append(start)
    on_stack.add(start)
    while work:
      node, children = work[-1]
      for child in children:
        if child not in index:
          index[child] = low[child] = counter[0]
          counter[0] += 1
          stack.append(child)
          on_stack.add(child)
          work.append((child, iter(sorted(g.get(child, ())))))
          break
        if child in on_stack:
          low[node] = min(low[node], index[child])
      else:
        work.pop()
        if work:
          low[work[-1][0]] = min(low[work[-1][0]], low[node])
        if low[node] == index[node]:
          comp = []
          while True:
            m = stack.pop()
            on_stack.discard(m)
            comp.append(m)
            if m == node:
              break
          if len(comp) > 1:
            out.append(sorted(comp))
  return sorted(out)


def _under(name: str, prefix: str) -> bool:
  return name == prefix or name.startswith(prefix + ".")


def forbidden_edges(g: dict[str, set[str]]) -> list[tuple[str, str, str]]:
  """``(importer, imported, why)`` for every edge ``FORBIDDEN`` names."""
  out = []
  for src in sorted(g):
    for dst in sorted(g[src]):
      for who, targets, why in FORBIDDEN:
        if _under(src, who) and any(_under(dst, t) for t in targets):
          out.append((src, dst, why))
  return out


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--allow", action="append", default=[], metavar="PREFIX",
                  help="accept an import circle whose modules all start with PREFIX")
  ap.add_argument("--edges", action="store_true", help="print every edge too")
  args = ap.parse_args(argv)
  g = graph()
  if args.edges:
    for src in sorted(g):
      for dst in sorted(g[src]):
        print(f"edge {src} -> {dst}")
  failed = False
  found = circles(g)
  for comp in found:
    ok = any(all(_under(m, p) for m in comp) for p in args.allow)
    failed |= not ok
    print(f"{'allowed ' if ok else ''}circle ({len(comp)} modules): {', '.join(comp)}")
  bad = forbidden_edges(g)
  for src, dst, why in bad:
    print(f"forbidden edge {src} -> {dst} ({why})")
  failed |= bool(bad)
  print(f"{len(g)} modules, {sum(map(len, g.values()))} edges, {len(found)} circle(s), "
        f"{len(bad)} forbidden edge(s): {'FAIL' if failed else 'ok'}")
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
