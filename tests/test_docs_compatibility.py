"""docs/compatibility.md backs each statement with a test: every test it names exists."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "compatibility.md").read_text()


def defined(file: str) -> set[str]:
    return set(re.findall(r"^def (test_\w+)", (ROOT / "tests" / file).read_text(), flags=re.M))


def test_every_test_the_page_names_exists():
    every = set().union(*(defined(f.name) for f in (ROOT / "tests").glob("test_*.py")))
    cited = re.findall(r"`(?:(test_\w+\.py)::)?(test_\w+?)(\*)?`", DOC)
    assert len(cited) >= 10
    for file, name, star in cited:
        names = defined(file) if file else every
        if star:
            assert any(n.startswith(name) for n in names), name
        else:
            assert name in names, (file, name)


def test_every_test_file_the_page_names_exists():
    for file in set(re.findall(r"`(test_\w+\.py)", DOC)):
        assert (ROOT / "tests" / file).exists(), file
