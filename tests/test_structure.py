"""Imports run one way: weights <- models (base, architectures) <- registry <- hub <- the rest.

Checked on the source, including imports inside functions, which would hide a cycle."""

import ast

import pytest
from conftest import ROOT

PACKAGE = ROOT / "lightsr"
# each layer may import only the layers before it (and errors, imaging helpers it names)
LAYERS = [
    {"errors"},
    {"weights"},
    {"models"},
    {"registry"},
    {"hub"},
]


def _lightsr_imports(path) -> set[str]:
    """Top-level lightsr modules a file imports (anywhere in it)."""
    tree = ast.parse(path.read_text())
    inside_models = path.parent.name == "models"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = "models" if inside_models and node.level == 1 else None
            module = node.module or ""
            top = module.split(".")[0] if not base else "models"
            if inside_models and node.level == 2:
                top = module.split(".")[0]
            if top:
                found.add(top)
            elif not module:  # "from . import x"
                found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lightsr."):
            found.add(node.module.split(".")[1])
    return found


def _layer(name: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if name in layer)


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("models/*.py")) + [PACKAGE / "weights.py",
                                                                       PACKAGE / "registry.py", PACKAGE / "hub.py"],
                         ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_lower_layers_never_import_upwards(path):
    own = _layer("models" if path.parent.name == "models" else path.stem)
    for name in _lightsr_imports(path):
        if name in {"models"} and own == _layer("models"):
            continue
        assert name in set().union(*LAYERS) and _layer(name) <= own, f"{path.name} imports lightsr.{name}"


def test_adding_an_architecture_is_one_line_in_the_registry():
    from lightsr.registry import ARCHITECTURES, MODELS

    for arch, (cls, variants) in ARCHITECTURES.items():
        assert cls.architecture == arch
        assert all(MODELS[name] == (cls, cfg) for name, cfg in variants.items())
    assert len(MODELS) == sum(len(v) for _, v in ARCHITECTURES.values())


def test_every_shipped_runs_record_is_in_the_repository(monkeypatch):
    # the cards of the shipped checkpoints are rendered from these run folders (benchmarks/render_cards.py);
    # a run whose progress stayed on one machine makes its card impossible to render from a clone
    import importlib

    from lightsr.cards import MERGE_RECORD, training_record

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    chains = {**importlib.import_module("bench_sr").RUNS, **importlib.import_module("bench_flare").RUNS}
    for name, runs in chains.items():
        for run in runs:
            folder = ROOT / run
            if not (folder / MERGE_RECORD).is_file():
                record = training_record(folder)
                assert record["step"] > 0 and record["hours"] > 0, (name, run)
