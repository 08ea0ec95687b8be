"""Functions longer than a limit (80 lines by default) in ``jcomrl/`` and ``experiments/``.

A function's length is counted from the ``ast``: ``end_lineno - lineno + 1`` of its ``def`` (or
``async def``) node, i.e. from the ``def`` line to its last line, signature, docstring, comments,
blank lines and nested functions included (decorators are not). Nested functions and methods are
checked too, named ``outer.inner`` / ``Class.method``. The tool prints every function over the
limit, longest first, and exits with status 1 if there is any::

    python -m tools.long_functions                      # jcomrl/ and experiments/, limit 80
    python -m tools.long_functions --limit 60           # another limit
    python -m tools.long_functions benchmarks tools/x.py   # other folders or files
"""

from __future__ import annotations

import argparse
import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("jcomrl", "experiments")
LIMIT = 80


def python_files(paths, root: str = ROOT) -> list[str]:
  """The ``.py`` files of ``paths`` (folders walked, sorted; relative paths from ``root``)."""
  out = []
  for p in paths:
    full = os.path.join(root, p)
    if os.path.isfile(full):
      out.append(full)
      continue
    for dirpath, dirnames, filenames in os.walk(full):
      dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__pycache__")))
      out.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".py"))
  return out


def function_lengths(path: str) -> list[tuple[int, int, str]]:
  """``(length, line, qualified name)`` of every function and method defined in ``path``."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  out = []

  def visit(node, prefix):
    for child in ast.iter_child_nodes(node):
      if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        name = prefix + child.name
        if not isinstance(child, ast.ClassDef):
          out.append((child.end_lineno - child.lineno + 1, child.lineno, name))
        visit(child, name + ".")
      else:
        visit(child, prefix)

  visit(tree, "")
  return out


def long_functions(paths=PACKAGES, limit: int = LIMIT,
                   root: str = ROOT) -> list[tuple[int, str, int, str]]:
  """``(length, file relative to root, line, name)`` of every function over ``limit`` lines in
  ``paths``, longest first."""
  found = []
  for path in python_files(paths, root):
    rel = os.path.relpath(path, root)
    found.extend((n, rel, line, name) for n, line, name in function_lengths(path) if n > limit)
  return sorted(found, key=lambda x: (-x[0], x[1], x[2]))


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("paths", nargs="*", default=list(PACKAGES),
                  help="folders or files, relative to the repository root (default: "
                       f"{' '.join(PACKAGES)})")
  ap.add_argument("--limit", type=int, default=LIMIT, help="the most lines a function may have")
  args = ap.parse_args(argv)
  found = long_functions(args.paths, args.limit)
  for n, rel, line, name in found:
    print(f"{n:4d} {rel}:{line} {name}")
  print(f"{len(found)} function(s) over {args.limit} lines in {', '.join(args.paths)}: "
        f"{'FAIL' if found else 'ok'}")
  return 1 if found else 0


if __name__ == "__main__":
  sys.exit(main())
