"""The API reference (docs/api, built by ``make docs``) covers every public name, and every
public docstring stands on its own: what it does, its arguments, its rule, an example."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import torch

import polyoptim
from polyoptim import mindspore, paddle, transforms
from polyoptim.paddle import lr as paddle_lr

API = Path(__file__).resolve().parents[1] / "docs" / "api"
DIRECTIVE = re.compile(r"^\.\. auto(?:class|function|exception|module):: (\S+)", re.M)
MODULES = (polyoptim, paddle, paddle_lr, mindspore, transforms)


def _documented() -> set[str]:
    names: set[str] = set()
    for page in API.glob("*.rst"):
        text = page.read_text()
        for target in DIRECTIVE.findall(text):
            names.add(target)
    return names


def _public(module) -> dict[str, object]:
    """A module's public objects that polyoptim defines (torch's re-exports aside)."""
    out = {}
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.ismodule(obj) or not getattr(obj, "__module__", "").startswith("polyoptim"):
            continue
        out[f"{module.__name__}.{name}"] = obj
    return out


def _all_public() -> dict[str, object]:
    found: dict[str, object] = {}
    for module in MODULES:
        found.update(_public(module))
    return found


def test_the_reference_names_every_public_class_and_function():
    documented = _documented()
    by_module = {m for m in documented if m in {mod.__name__ for mod in MODULES}}
    missing = []
    for qualname, obj in _all_public().items():
        module = qualname.rpartition(".")[0]
        # an automodule page with members documents its module's __all__
        if qualname in documented or (module in by_module and module != "polyoptim.paddle"):
            continue
        # a re-export documented under another path (polyoptim.paddle.L1Decay, ...)
        if any(getattr(obj, "__qualname__", None) == d.rpartition(".")[2] for d in documented):
            continue
        missing.append(qualname)
    assert not missing, f"not in docs/api/*.rst: {missing}"
    assert "polyoptim.cli" in documented
    assert ".. polyoptim-cli::" in (API / "cli.rst").read_text()


BASES = {"polyoptim.Optimizer", "polyoptim.paddle.Optimizer", "polyoptim.mindspore.Optimizer"}


def _optimizer_classes() -> dict[str, type]:
    return {
        name: obj
        for name, obj in _all_public().items()
        if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer) and name not in BASES
    }


@pytest.mark.parametrize("name", sorted(_optimizer_classes()))
def test_every_optimizer_docstring_has_its_rule_its_arguments_and_an_example(name):
    doc = _optimizer_classes()[name].__doc__ or ""
    assert ".. math::" in doc or ":math:" in doc, f"{name}: no update rule in math"
    assert "Args:" in doc, f"{name}: no Args section"
    assert ">>>" in doc, f"{name}: no example"
    assert not re.search(r"(?i)same arguments as|args: as |: as :class:", doc), (
        f"{name}: arguments described by reference to another class"
    )


@pytest.mark.parametrize("name", sorted(_all_public()))
def test_every_public_docstring_has_an_example(name):
    obj = _all_public()[name]
    doc = obj.__doc__ or ""
    assert len(doc.strip()) > 40, f"{name}: no docstring"
    if isinstance(obj, type) and issubclass(obj, Exception):
        return
    assert ">>>" in doc or "Example" in doc, f"{name}: no example"


def test_ci_builds_the_reference_with_warnings_as_errors():
    root = API.parents[1]
    assert "make docs" in (root / ".ci" / "run").read_text().splitlines()
    makefile = (root / "Makefile").read_text()
    recipe = makefile.split("\ndocs:", 1)[1].split("\n\n", 1)[0]
    assert "sphinx -W" in recipe and "docs/api" in recipe
    assert '".[dev,docs]"' in makefile  # a fresh machine gets Sphinx from the docs extra
