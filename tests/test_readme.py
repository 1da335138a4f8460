"""The README's code blocks run as written (so the quickstarts stay true)."""

from __future__ import annotations

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_a_quickstart_per_dialect():
    text = "\n".join(BLOCKS)
    for dialect in (
        "import polyoptim as optim",
        "from polyoptim import paddle",
        "from polyoptim import mindspore",
    ):
        assert dialect in text


def _timm_importable() -> bool:
    try:
        import timm.optim  # noqa: F401
    except Exception:  # not installed, or its torchvision cannot load beside this torch
        return False
    return True


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, tmp_path, monkeypatch):
    if "timm.optim" in BLOCKS[index] and not _timm_importable():
        pytest.skip(
            "the timm example needs an importable timm (tests/test_timm_registry.py "
            "covers register_timm without it)"
        )
    monkeypatch.chdir(tmp_path)  # blocks save checkpoints to the working directory
    exec(compile(BLOCKS[index], f"README block {index}", "exec"), {})
