"""Checks every relative link of README.md and docs/*.md: the target is a file of the repository
and, for a ``#fragment`` into a Markdown file, that file has a heading with that GitHub anchor.

    python -m tools.check_links      # exit status 1 and the broken links, if any
"""

import glob
import os
import re
import subprocess
import sys

root = subprocess.check_output(["git", "rev-parse", "--show-toplevel"], text=True).strip()
os.chdir(root)
tracked = set(subprocess.check_output(["git", "ls-files"], text=True).split("\n"))
pages = ["README.md"] + sorted(glob.glob("docs/*.md"))


def anchors(path):
  out, code = set(), False
  for line in open(path, encoding="utf-8"):
    if line.startswith("```"):
      code = not code
    if not code and line.startswith("#"):
      text = line.lstrip("#").strip().lower()
      text = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
      out.add(text)
  return out


bad, n = [], 0
for page in pages:
  text = open(page, encoding="utf-8").read()
  text = re.sub(r"```.*?```", "", text, flags=re.S)  # links inside code blocks are not links
  for target in re.findall(r"\]\(([^)\s]+)\)", text):
    if re.match(r"[a-z]+://|mailto:", target):
      continue
    n += 1
    path, _, frag = target.partition("#")
    dest = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
    if not os.path.exists(dest):
      bad.append(f"{page}: {target} -> {dest} does not exist")
    elif os.path.isfile(dest) and dest not in tracked and page != dest:
      bad.append(f"{page}: {target} -> {dest} is not tracked by git")
    elif frag and dest.endswith(".md") and frag not in anchors(dest):
      bad.append(f"{page}: {target} -> no heading #{frag} in {dest}")
print(f"{n} relative links in {len(pages)} pages; {len(bad)} broken")
print("\n".join(bad))
sys.exit(1 if bad else 0)
