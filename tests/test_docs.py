"""The documentation runs: every ``python`` block in the README and the docs pages, and every
``>>>`` example in a docstring of `workbench` and `probes`, is executed here; and the README, the
docs and the walkthrough notebook use only the public API.

Conventions (docs/development.md):

* a page's fenced ``python`` blocks run in order, in one namespace, in a temporary directory,
  with ``WORKBENCH_CHECKPOINTS`` pointing at a temporary runs root; a ``py`` block is shown and
  not run (a shell block never runs);
* a docstring's examples run as doctests, each docstring in its module's namespace, in a
  temporary directory whose runs root already holds a ``smoke`` run named ``demo`` (trained and
  probed once). An example with an expected output must print it (ELLIPSIS and whitespace
  normalisation apply); an example with none is run and its value is not compared.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import json
import pkgutil
import re
from pathlib import Path

import pytest

import probes
import workbench
from workbench import figures

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.S | re.M)


def blocks(text: str, languages: tuple[str, ...]) -> list[str]:
    """The bodies of the fenced blocks whose info string is one of ``languages``."""
    return [m.group(2) for m in FENCE.finditer(text) if m.group(1) in languages]


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


RUNNABLE = [p for p in PAGES if blocks(p.read_text(), ("python",))]


def test_the_fence_reader_sees_runnable_and_shown_blocks():
    text = "a\n```python\nx = 1\n```\n```py\ny = 2\n```\n```bash\nmake test\n```\n"
    assert blocks(text, ("python",)) == ["x = 1\n"]
    assert blocks(text, ("py",)) == ["y = 2\n"]


@pytest.mark.parametrize("page", RUNNABLE, ids=_rel)
def test_every_python_block_of_a_page_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKBENCH_CHECKPOINTS", str(tmp_path / "checkpoints"))
    namespace: dict = {"__name__": "__docs__"}
    for i, code in enumerate(blocks(page.read_text(), ("python",))):
        try:
            exec(compile(code, f"{_rel(page)}, python block {i + 1}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{_rel(page)}: python block {i + 1} failed: {exc!r}\n{code}") from exc


# ----------------------------------------------------------------------------- the public API
def _public_names_problems(code: str) -> list[str]:
    """What in ``code`` goes past the public API: an import of a workbench module other than the
    package itself and ``figures``, a name not in ``workbench.__all__`` (or
    ``workbench.figures.__all__``), or a probes name that ``probes`` does not export."""
    problems = []
    tree = ast.parse(code)
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "workbench" and a.name != "workbench":
                    problems.append(f"import {a.name}")
                if a.name in ("workbench", "probes"):
                    aliases[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            top = node.module.split(".")[0]
            if top == "workbench":
                if node.module != "workbench":
                    problems.append(f"from {node.module} import ...")
                for a in node.names:
                    if a.name not in workbench.__all__:
                        problems.append(f"from workbench import {a.name}")
                    elif a.name == "figures":
                        aliases[a.asname or a.name] = "workbench.figures"
            elif top == "probes":
                module = node.module
                for a in node.names:
                    if module == "probes" and not (hasattr(probes, a.name) and
                                                    (a.name in probes.__all__ or _is_module(f"probes.{a.name}"))):
                        problems.append(f"from probes import {a.name}")
    exported = {"workbench": set(workbench.__all__), "workbench.figures": set(figures.__all__)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            owner = aliases[node.value.id]
            if owner in exported and node.attr not in exported[owner]:
                problems.append(f"{owner}.{node.attr}")
    return problems


def _is_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def _walkthrough_code() -> str:
    nb = json.loads((ROOT / "notebooks" / "walkthrough.ipynb").read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


def test_the_public_names_check_catches_a_private_reach():
    assert _public_names_problems("import workbench\nworkbench.probe(run)\nfrom workbench import figures\n"
                                  "figures.loss_curves(m)\nfrom probes import fourier") == []
    assert _public_names_problems("from workbench.report.run_report import overview_html") != []
    assert _public_names_problems("import workbench\nworkbench.store.open_run('x')") == ["workbench.store"]
    assert _public_names_problems("from workbench import figures\nfigures._style(f, 't')") == ["workbench.figures._style"]


@pytest.mark.parametrize("source", [*PAGES, ROOT / "notebooks" / "walkthrough.ipynb"], ids=_rel)
def test_readme_docs_and_walkthrough_use_only_public_names(source):
    codes = [_walkthrough_code()] if source.suffix == ".ipynb" else blocks(source.read_text(), ("python", "py"))
    if source.is_relative_to(ROOT / "docs" / "api"):
        codes = []  # the API reference documents every package's face on purpose
    problems = [p for code in codes for p in _public_names_problems(code)]
    assert not problems, (_rel(source), problems)


# ----------------------------------------------------------------------------- docstrings
def _modules() -> list:
    found = []
    for package in (workbench, probes):
        found.append(package)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.endswith("__main__"):
                continue
            found.append(importlib.import_module(info.name))
    return found


class _Checker(doctest.OutputChecker):
    """An example with no expected output is run and not compared; one with an expected output
    must print it (ELLIPSIS, NORMALIZE_WHITESPACE)."""

    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        if not want.strip():
            return True
        return super().check_output(want, got, optionflags | doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)


DOCTESTS = [t for m in _modules() for t in doctest.DocTestFinder(exclude_empty=True).find(m) if t.examples]


@pytest.fixture(scope="session")
def doc_root(tmp_path_factory) -> Path:
    """A runs root holding the ``demo`` run the docstring examples open: the smoke preset, probed."""
    root = tmp_path_factory.mktemp("doc-checkpoints")
    run = workbench.train("demo", "smoke", progress=False, root=root)
    workbench.probe(run, progress=False)
    return root


def test_docstring_examples_exist_where_the_api_is():
    names = {t.name for t in DOCTESTS}
    assert {"workbench", "workbench.probing.runner", "workbench.training.solo", "probes.fourier"} <= names


@pytest.mark.parametrize("test", DOCTESTS, ids=lambda t: t.name)
def test_docstring_examples_run(test, doc_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKBENCH_CHECKPOINTS", str(doc_root))
    test.globs = {**test.globs, "workbench": workbench}
    runner = doctest.DocTestRunner(checker=_Checker(), optionflags=doctest.ELLIPSIS, verbose=False)
    out: list[str] = []
    result = runner.run(test, out=out.append, clear_globs=True)
    assert result.failed == 0, "".join(out)


# ----------------------------------------------------------------------------- the site
def test_the_docs_site_builds_strictly_and_fetches_nothing(tmp_path):
    """`make docs`: every page, link and API reference page builds with --strict, and the built
    site loads no script, style sheet or font from the network (it is browsed from disk)."""
    import os
    import subprocess
    import sys

    pytest.importorskip("mkdocs", reason="the docs extra is not installed (make setup installs it)")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    remote = re.compile(r"""<script[^>]*\ssrc=["']https?://|<link[^>]*href=["']https?://[^"']*\.(css|js|woff2?)""")
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 20 and (site / "api" / "model.html").is_file()
    assert not [str(p.relative_to(site)) for p in pages if remote.search(p.read_text())]
    assert "build_bridge" in (site / "api" / "model.html").read_text()
