"""Print the README's code block marked ``<!-- device-stage: NAME -->`` (the line before its fence), so
the emulated device stage runs the README's Raspberry Pi commands verbatim. Exit 1 if it is missing."""

import re
import sys
from pathlib import Path

name = sys.argv[1]
text = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
m = re.search(r"<!-- device-stage: " + re.escape(name) + r" -->\s*\n```(?:bash)?\n(.*?)\n```", text, re.S)
if not m:
    sys.exit(f"README.md has no code block marked <!-- device-stage: {name} -->")
print(m.group(1))
