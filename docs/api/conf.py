"""Sphinx configuration of polyoptim's API reference (``make docs``).

The pages are built from the docstrings: autodoc reads them, napoleon reads their Google-style
sections (Args, Returns, Example), mathjax renders the update rules. ``make docs`` builds with
warnings as errors, so a docstring that does not render breaks the build.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "_ext"))
sys.path.insert(0, os.path.abspath(os.path.join(HERE, "..", "..", "src")))

import polyoptim  # noqa: E402

project = "polyoptim"
author = "the polyoptim authors"
copyright = "the polyoptim authors, Apache-2.0"  # noqa: A001 (Sphinx's name)
release = version = polyoptim.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "cli_help",
]
# MathJax from the CDN when the pages are viewed; the build itself needs no network.

autodoc_default_options = {"members": True, "member-order": "bysource", "show-inheritance": True}
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
autodoc_inherit_docstrings = False  # a torch method's docstring is torch's, not ours
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

html_theme = "alabaster"
html_theme_options = {"description": "torch.optim, Paddle and MindSpore optimizers on PyTorch"}
html_title = f"polyoptim {release}"
exclude_patterns = ["_build"]
