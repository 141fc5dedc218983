"""Sphinx configuration for the evtrio documentation (``make docs``)."""

from __future__ import annotations

import evtrio

project = "evtrio"
author = "The evtrio developers"
copyright = "2026, The evtrio developers"  # noqa: A001 - Sphinx's name for it
version = release = evtrio.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# No network at build time: intersphinx inventories are not fetched.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

html_theme = "furo"
html_title = f"evtrio {release}"
exclude_patterns = ["_build"]
