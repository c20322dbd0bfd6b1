"""The progress mechanism: where bars and notes go for each monitor, and which monitor
``progress=`` resolves to."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from workbench import monitor
from workbench.monitor import SILENT, Bar, Console, Monitor, Notebook, Recorder, format_status, resolve


def test_recorder_records_events_in_order():
    rec = Recorder()
    with rec.bar(total=3, desc="train", unit="ep") as bar:
        bar.advance()
        bar.advance(2, loss=0.012345, acc=1)
        bar.status(phase="cleanup")
    bar.close()  # closing again records nothing
    bar.advance()  # nor does a closed bar
    rec.note("member x: complete")
    assert rec.events == [
        ("bar", "train", 3),
        ("advance", "train", 1, {}),
        ("advance", "train", 2, {"loss": 0.012345, "acc": 1}),
        ("status", "train", {"phase": "cleanup"}),
        ("close", "train"),
        ("note", "member x: complete"),
    ]
    assert rec.notes == ["member x: complete"]


def test_status_is_compact():
    assert format_status({"loss": 0.012345, "acc": 1, "lr": 1e-3, "big": 12345.6, "phase": "grok"}) \
        == "loss=0.0123, acc=1, lr=0.001, big=1.23e+04, phase=grok"
    assert format_status({"loss": torch.tensor(2.0 / 3)}) == "loss=0.667"
    assert format_status({}) == ""


def test_silent_does_nothing(capsys):
    assert isinstance(SILENT, Monitor)
    with SILENT.bar(total=10, desc="x") as bar:
        bar.advance(3, loss=1.0)
        bar.status(loss=0.5)
    SILENT.note("not shown")
    assert capsys.readouterr() == ("", "")


def test_console_notes_to_stdout_bars_to_stderr(capsys):
    quiet = Console(bars=False)
    with quiet.bar(total=4, desc="train") as bar:
        bar.advance(4, loss=0.25)
    quiet.note("member a: complete")
    out, err = capsys.readouterr()
    assert out == "member a: complete\n" and err == ""

    loud = Console(bars=True)
    with loud.bar(total=4, desc="train", unit="ep", initial=1) as bar:
        bar.advance(3, loss=0.123456)
        loud.note("member b: complete")
    out, err = capsys.readouterr()
    assert out == "member b: complete\n"
    assert "train" in err and "4/4" in err and "ep" in err and "loss=0.123" in err


def test_notebook_notes_print_into_the_cell(capsys):
    Notebook().note("member c: complete")
    assert capsys.readouterr().out == "member c: complete\n"


def test_bar_base_is_a_context_manager_that_closes():
    with Bar("x", 2) as bar:
        assert not bar.closed
    assert bar.closed


class ZMQInteractiveShell:  # stands in for ipykernel's shell: resolve goes by the class name
    pass


def fake_ipython(monkeypatch, shell):
    module = types.ModuleType("IPython")
    module.get_ipython = lambda: shell
    monkeypatch.setitem(sys.modules, "IPython", module)


def test_resolve(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert resolve(False) is SILENT and resolve(None) is SILENT
    rec = Recorder()
    assert resolve(rec) is rec

    monkeypatch.setattr(sys, "stderr", types.SimpleNamespace(isatty=lambda: True, write=None, flush=None))
    assert isinstance(resolve(True), Console) and resolve(True).bars is True
    monkeypatch.setattr(sys, "stderr", types.SimpleNamespace(isatty=lambda: False, write=None, flush=None))
    console = resolve(True)
    assert type(console) is Console and console.bars is False

    fake_ipython(monkeypatch, object())  # a terminal IPython: still the console
    assert type(resolve(True)) is Console
    fake_ipython(monkeypatch, ZMQInteractiveShell())
    assert type(resolve(True)) is Notebook
    monkeypatch.setattr(monitor, "_widgets_installed", lambda: False)
    assert type(resolve(True)) is Console

    with pytest.raises(TypeError):
        resolve("yes")
