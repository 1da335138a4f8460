"""``.. polyoptim-cli::`` -- the ``--help`` text of the ``polyoptim`` command and each
subcommand, taken from the parser itself so the page cannot drift from the code."""

from __future__ import annotations

import argparse
import io
from contextlib import redirect_stdout

from docutils import nodes
from sphinx.util.docutils import SphinxDirective


def _help(parser: argparse.ArgumentParser) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        parser.print_help()
    return out.getvalue()


class PolyoptimCli(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        from polyoptim.cli import build_parser

        parser = build_parser()
        sections: list[nodes.Node] = [nodes.literal_block(text=_help(parser), language="text")]
        for action in parser._subparsers._group_actions:  # argparse keeps them only here
            for name, sub in action.choices.items():
                section = nodes.section(ids=[f"polyoptim-{name}"])
                section += nodes.title(text=f"polyoptim {name}")
                section += nodes.literal_block(text=_help(sub), language="text")
                sections.append(section)
        return sections


def setup(app):
    app.add_directive("polyoptim-cli", PolyoptimCli)
    return {"parallel_read_safe": True}
