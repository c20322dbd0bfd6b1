"""The rules of the layout, checked rather than written down: one seam per external system, pure
probes, shapes checked at run time."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from jaxtyping import TypeCheckError

ROOT = Path(__file__).resolve().parents[1]

# The package order, bottom first: a module may import its own package and the units below it,
# never a unit on its own level or above (a cross-package import goes through the package's face,
# its ``__init__``). The root modules are units of their own.
LAYERS = [
    {"workbench.errors"},
    {"workbench.pool", "workbench.monitor", "workbench.tasks", "workbench.inputs"},
    {"workbench.config"},
    {"workbench.store"},
    {"workbench.model"},
    {"workbench.forecasting", "workbench.random_features"},
    {"workbench.training", "workbench.probing", "workbench.figures"},
    {"workbench.sweeps", "workbench.importer"},
    {"workbench.report"},
    {"workbench"},
    {"workbench.cli", "workbench.bench"},
    {"workbench.__main__"},
]


def _modules(root: Path, package: str = "workbench") -> dict[str, Path]:
    """Every module of ``package`` under ``root`` (a source tree), by dotted name."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _guarded(tree: ast.Module) -> set[int]:
    """Nodes under ``if TYPE_CHECKING:`` (annotations only: never run)."""
    return {id(n) for stmt in tree.body if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test)
            for n in ast.walk(stmt)}


def _imports_of(path: Path, known: set[str]) -> tuple[set[str], set[str]]:
    """(modules imported when the module loads, project modules imported inside functions), each
    ``from a.b import c`` counted as a.b and, when c is a module, as a.b.c."""
    tree = ast.parse(path.read_text())
    guarded, at_load, late = _guarded(tree), set(), set()
    top = {id(n) for stmt in tree.body if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
           for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in guarded or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Import):
            names = {a.name for a in node.names}
        elif node.module:  # the submodules it names, and the module itself when it takes a name from it
            subs = {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known}
            names = subs | ({node.module} if len(subs) < len(node.names) else set())
        else:
            continue
        (at_load if id(node) in top else late).update(names)
    return at_load, late


def _unit(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def layering_problems(root: Path) -> list[str]:
    """What breaks the layering in the source tree at ``root``: import circles among modules,
    imports of a unit on the same level or above, cross-package imports that bypass a package's
    face, project imports inside functions (the TransformerLens import may stay lazy: it is not
    the project's). An empty list is a clean tree."""
    modules = _modules(root)
    rank = {u: i for i, layer in enumerate(LAYERS) for u in layer}
    problems, graph = [], {}
    for name, path in modules.items():
        at_load, late = _imports_of(path, set(modules))
        graph[name] = {m for m in at_load if m in modules}
        problems += [f"{name} imports {m} inside a function" for m in sorted(late)
                     if m.split(".")[0] in ("workbench", "probes")]
        unit = _unit(name)
        if unit not in rank:
            problems.append(f"{name} belongs to no layer (add its package to LAYERS)")
            continue
        for m in sorted(graph[name]):
            other = _unit(m)
            if other == unit:
                continue
            if other not in rank:
                problems.append(f"{name} imports {m}, which belongs to no layer")
            elif rank[other] >= rank[unit]:
                problems.append(f"{name} imports {m}: {other} is not below {unit}")
            elif m != other and other != "workbench":
                problems.append(f"{name} imports {m} past the face of {other} (import it from {other})")
    # circles: Tarjan's strongly connected components over the load-time graph
    index, low, stack, on, counter = {}, {}, [], set(), [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                problems.append("import circle: " + " -> ".join(sorted(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return problems


SOURCES = sorted((ROOT / "workbench").rglob("*.py")) + sorted((ROOT / "probes").glob("*.py"))


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


def test_the_packages_are_layered_without_circles():
    assert layering_problems(ROOT) == []


def _planted(tmp_path: Path, edits: dict[str, str]) -> Path:
    """A copy of the source tree with lines appended to some of its modules."""
    shutil.copytree(ROOT / "workbench", tmp_path / "workbench", ignore=shutil.ignore_patterns("__pycache__"))
    for rel, line in edits.items():
        path = tmp_path / rel
        path.write_text(path.read_text() + "\n" + line + "\n")
    return tmp_path


def test_the_layering_check_fails_on_a_planted_upward_import(tmp_path):
    tree = _planted(tmp_path, {"workbench/store/layout.py": "from workbench.report import build_report"})
    problems = layering_problems(tree)
    assert any("workbench.store.layout imports workbench.report: workbench.report is not below workbench.store" in p
               for p in problems), problems


def test_the_layering_check_fails_on_a_planted_circle(tmp_path):
    # formats is below run inside the store; making formats import run closes a circle
    tree = _planted(tmp_path, {"workbench/store/formats.py": "from workbench.store.run import Run"})
    problems = layering_problems(tree)
    assert any(p.startswith("import circle:") and "workbench.store.formats" in p and "workbench.store.run" in p
               for p in problems), problems


def test_the_layering_check_fails_on_a_hidden_import_and_a_bypassed_face(tmp_path):
    tree = _planted(tmp_path, {
        "workbench/training/schedule.py": "def late():\n    from workbench.store import Run\n    return Run",
        "workbench/sweeps/manifest.py": "from workbench.training.solo import train",
    })
    problems = layering_problems(tree)
    assert "workbench.training.schedule imports workbench.store inside a function" in problems
    assert any("past the face of workbench.training" in p for p in problems), problems


def test_every_package_says_what_it_owns_and_lists_its_modules():
    for face in sorted((ROOT / "workbench").glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(face.read_text())) or ""
        modules = [p.stem for p in face.parent.glob("*.py") if p.name != "__init__.py"]
        missing = [m for m in modules if f"``{m}``" not in doc]
        assert doc and not missing, (_rel(face), missing)
        listed = re.findall(r"``(\w+)``", doc[doc.index("Modules:"):]) if "Modules:" in doc else []
        assert set(listed) <= set(modules) | {"definitions"}, (_rel(face), sorted(set(listed) - set(modules)))
        exported = ast.literal_eval(next(n.value for n in ast.parse(face.read_text()).body
                                         if isinstance(n, ast.Assign) and n.targets[0].id == "__all__"))
        assert len(exported) == len(set(exported)), _rel(face)


def test_probes_never_import_workbench():
    offenders = {_rel(p): sorted(m for m in _imports(p) if m.split(".")[0] == "workbench")
                 for p in (ROOT / "probes").glob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}
    code = "import sys, probes, probes.phases; print(sorted(m for m in sys.modules if m.split('.')[0] == 'workbench'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_only_the_bridge_module_knows_transformerlens():
    users = [_rel(p) for p in SOURCES if any(m.split(".")[0] == "transformer_lens" for m in _imports(p))]
    assert users == ["workbench/model/bridge.py"]


# A state-dict or hook name: "embed.weight", "blocks.0.attn.q.weight", f"blocks.{last}.mlp.hook_post", ...
_TL_NAME = re.compile(r"^(embed|pos_embed|unembed)\.(weight|bias)$|^blocks\.|\.hook_|^hook_")


def test_weight_and_hook_names_are_spelled_only_in_the_model_package():
    spelled = {}
    for path in SOURCES:
        rel = _rel(path)
        if rel.startswith("workbench/model/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _TL_NAME.search(node.value):
                spelled.setdefault(rel, []).append(node.value)
    assert not spelled, spelled


def test_the_store_does_not_build_models_and_only_its_layout_knows_file_names():
    for path in (ROOT / "workbench" / "store").glob("*.py"):
        assert not any(m.startswith("workbench.model") for m in _imports(path)), _rel(path)
    names = ("config.json", "provenance.json", "split.safetensors", "metrics.jsonl", "state.safetensors",
             "index.json", "key_frequencies.json", "phases.json", "settings.json", "sweep.json", "sweep.csv",
             "outcomes.json")
    for path in SOURCES:
        if _rel(path) != "workbench/store/layout.py":
            text = path.read_text()
            assert not [n for n in names if f'"{n}"' in text or f"'{n}'" in text], _rel(path)


def test_no_private_names_are_imported_across_packages():
    for path in SOURCES:
        unit = _unit(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("workbench", "probes"):
                if _unit(node.module) != unit:
                    assert not [a.name for a in node.names if a.name.startswith("_")], (_rel(path), node.module)


def test_library_code_never_prints():
    """Progress goes through `workbench.monitor`; only the CLI, the benchmarks and the monitor
    itself write to the terminal."""
    allowed = {"workbench/monitor.py", "workbench/__main__.py"}
    for path in (ROOT / "workbench").rglob("*.py"):
        if _rel(path) in allowed or _rel(path).startswith(("workbench/cli/", "workbench/bench/")):
            continue
        calls = [n.lineno for n in ast.walk(ast.parse(path.read_text()))
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"]
        assert not calls, (_rel(path), calls)


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
