"""Links from a page to a file of the repository outside ``docs/`` (deploy/README.md, bench/).

MyST takes a link to any ``.md`` file for a page of the site and, for one outside ``docs/``,
warns that the page is unknown: strict mode would then refuse every link to the deploy guide.
Such a link is a file of the repository, so it becomes a download of that file; a link to a file
that does not exist still fails the build.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.transforms import SphinxTransform
from sphinx.util import logging

LOG = logging.getLogger(__name__)


class RepositoryFileLinks(SphinxTransform):
    """Turns a Markdown link to a ``.md`` file outside the source folder into a download."""

    # Before the environment collects downloads (on doctree-read, after every transform).
    default_priority = 500

    def apply(self, **kwargs: Any) -> None:
        srcdir = Path(self.env.srcdir)
        for node in list(self.document.findall(addnodes.pending_xref)):
            if node.get("reftype") != "myst" or node.get("refdomain") != "doc":
                continue
            target = Path(str(node["reftarget"]) + ".md")
            if not target.is_absolute() or target.is_relative_to(srcdir):
                continue
            if not target.is_file():
                LOG.warning("link to a missing file: %s", target, location=node)
                continue
            here = Path(self.env.doc2path(self.env.docname)).parent
            relative = Path(*[".."] * len(here.relative_to(srcdir.parent).parts))
            link = addnodes.download_reference(
                refdomain=None,
                reftarget=str(relative / target.relative_to(srcdir.parent)),
                refdoc=self.env.docname,
                reftype="myst",
                refexplicit=True,
            )
            link += nodes.literal("", "", *node.children[0].children, classes=["xref", "download"])
            node.replace_self(link)


def setup(app: Any) -> dict[str, Any]:
    """Registers the transform (Sphinx calls this)."""
    app.add_transform(RepositoryFileLinks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
