"""The rules of the layout, checked rather than written down: one seam per external system, pure
probes, shapes checked at run time."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from jaxtyping import TypeCheckError

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "workbench").glob("*.py")) + sorted((ROOT / "probes").glob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module a file imports (top-level and inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_probes_never_import_workbench():
    offenders = {_rel(p): sorted(m for m in _imports(p) if m.split(".")[0] == "workbench")
                 for p in (ROOT / "probes").glob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}
    code = "import sys, probes, probes.phases; print(sorted(m for m in sys.modules if m.split('.')[0] == 'workbench'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_only_the_model_module_knows_transformerlens():
    users = [_rel(p) for p in SOURCES if any(m.split(".")[0] == "transformer_lens" for m in _imports(p))]
    assert users == ["workbench/model.py"]


# A state-dict or hook name: "embed.weight", "blocks.0.attn.q.weight", f"blocks.{last}.mlp.hook_post", ...
_TL_NAME = re.compile(r"^(embed|pos_embed|unembed)\.(weight|bias)$|^blocks\.|\.hook_|^hook_")


# The bridge's own names end in .weight / .bias, or are hooks; legacy.py spells the older formats'
# names ("blocks.0.attn.W_Q"), which share the "blocks." prefix but never these endings.
_BRIDGE_NAME = re.compile(r"\.(weight|bias)$|\.hook_|^hook_")


def test_weight_and_hook_names_are_spelled_only_in_the_model_module():
    spelled = {}
    for path in SOURCES:
        if path.name == "model.py":
            continue
        pattern = _BRIDGE_NAME if path.name == "legacy.py" else _TL_NAME
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and pattern.search(node.value):
                spelled.setdefault(_rel(path), []).append(node.value)
    assert not spelled, spelled


def test_the_store_does_not_build_models_and_only_it_knows_run_file_names():
    assert not any(m.startswith("workbench.model") for m in _imports(ROOT / "workbench" / "store.py"))
    names = ("config.json", "provenance.json", "split.safetensors", "metrics.jsonl", "state.safetensors",
             "index.json", "key_frequencies.json", "phases.json", "settings.json")
    for path in SOURCES:
        if path.name != "store.py":
            text = path.read_text()
            assert not [n for n in names if f'"{n}"' in text], _rel(path)


def test_no_private_names_are_imported_across_modules():
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("workbench", "probes"):
                assert not [a.name for a in node.names if a.name.startswith("_")], (_rel(path), node.module)


def test_every_probe_declares_its_table():
    from probes import REGISTRY

    for spec in REGISTRY.values():
        assert spec.columns[0] == "step" and spec.columns[-1] == "value"
        assert spec.doc and spec.version >= 1


def test_a_probe_whose_table_differs_from_its_spec_is_refused(runs_root, monkeypatch):
    import dataclasses

    import workbench
    from probes import REGISTRY

    run = workbench.train("spec", "smoke", {"epochs": 5}, device="cpu", progress=False, root=runs_root)
    bad = dataclasses.replace(REGISTRY["weights"], keys=("param", "extra"))
    monkeypatch.setitem(REGISTRY, "weights", bad)
    with pytest.raises(RuntimeError, match=r"probe 'weights' returned columns \['step', 'param', 'value'\]"):
        workbench.probe(run, probes=["weights"], progress=False)


def test_tensor_shapes_are_checked_at_run_time():
    """The jaxtyping annotations are enforced in the test suite (tests/conftest.py installs the
    checks), so a wrong shape fails where it enters, not three calls later."""
    from probes.fourier import W_L, logit_fit, neuron_frequency_fractions

    with pytest.raises(TypeCheckError):
        neuron_frequency_fractions(torch.zeros(7, 5, 3)[:, :, 0])  # [p, p] without the neuron axis
    with pytest.raises(TypeCheckError):
        logit_fit(torch.zeros(7, 7, 5))  # the output axis must be p too
    with pytest.raises(TypeCheckError):
        W_L(torch.zeros(8, 4), torch.zeros(5, 7))  # d_model differs
    assert W_L(torch.zeros(8, 4), torch.zeros(4, 7)).shape == (8, 7)
