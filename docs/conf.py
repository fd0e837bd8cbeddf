"""Sphinx configuration of the docs site: Markdown pages (MyST) built in strict mode.

`.ci/run` builds with ``-W --keep-going``, so a broken cross-reference or a page left out of every
toctree fails CI, as a broken link in the docs would otherwise go unseen.
"""

import sys
from pathlib import Path

# Local extensions live in _ext.
sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "Subscription broker"
extensions = ["myst_parser", "repo_files"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext"]
html_theme = "furo"
html_title = "Subscription broker"
# Headings up to level 3 get anchors, so `page.md#a-heading` links are checked like pages.
myst_heading_anchors = 3
# Every cross-reference must resolve (with -W, one that does not fails the build).
nitpicky = True
