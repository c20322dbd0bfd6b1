"""Scoring forecasts on runs whose outcome is known, leave one family out: the honest test of the forecaster.

A family is one (p, operation) pair (`fitting.family_of`). `leave_one_family_out` fits a
calibration on every family but one (`fitting.fit_from_samples`, its interval residuals
themselves out of family) and forecasts the held-out family's runs with it, for each family in
turn; `score_unseen` forecasts the runs of sweeps no calibration saw with one calibration. For
each run, with T_fit and T_grok its fit and grok steps (`fitting.known_outcome`), forecasts are
made at

    fit   s = T_fit                               (the end of memorisation)
    25%   s = T_fit + 0.25 (T_grok − T_fit)       (runs that generalise after fitting only)
    50%   s = T_fit + 0.50 (T_grok − T_fit)
    75%   s = T_fit + 0.75 (T_grok − T_fit)
    800   s = 800                                 (every run: the step of the first forecast issue's example)

and scored by

    MAPE        mean over the runs still to generalise of |ĝ − T_grok| / T_grok (a forecast with no
                grok step is counted apart, ``missing``, never as an error of 0)
    coverage    the fraction of those whose 80% interval holds T_grok
    AUROC       of p_generalise at ``fit`` and ``800`` for "test accuracy reaches 99% within the
                budget" (Mann–Whitney; ties count half)
    seed floor  the best any forecaster could do from the config alone: over the runs of the stage
                whose config has several seeds that generalise (the config up to its paired seeds),
                the mean of |T_grok − the seeds' median| / T_grok; what a MAPE cannot go below
                from the config alone

Example:
    >>> auroc([0.9, 0.8, 0.1], [True, True, False])
    1.0
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from workbench import store
from workbench.errors import UsageError
from workbench.forecasting.calibration import Calibration
from workbench.forecasting.fitting import RunSamples, family_of, fit_from_samples, known_outcome, run_samples
from workbench.forecasting.forecaster import forecast_view
from workbench.forecasting.signals import SignalCache
from workbench.forecasting.view import training_views

STAGES = ("fit", "25%", "50%", "75%", "800")
PROGRESS = {"25%": 0.25, "50%": 0.5, "75%": 0.75}
SEED_FIELDS = ("model_seed", "split_seed")

ROW_COLUMNS = ("run", "family", "config", "stage", "at_step", "fit_step", "grok_step", "outcome", "groks", "regime",
               "state", "p_generalise", "forecast_step", "low", "high")


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Mann–Whitney AUROC; NaN without both classes."""
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def config_key(cfg) -> str:
    """A config up to its paired seeds: the runs a seed floor compares."""
    return "|".join(f"{k}={v}" for k, v in sorted(cfg.to_dict().items()) if k not in SEED_FIELDS)


def stage_steps(out, steps: Sequence[int]) -> dict[str, int]:
    """The steps each stage forecasts at for a run with outcome ``out`` (those inside its checkpoints)."""
    at = {"800": 800}
    if out.fit_step is not None:
        at["fit"] = out.fit_step
        if out.grok_step is not None and out.grok_step > out.fit_step:
            for name, u in PROGRESS.items():
                at[name] = out.fit_step + round(u * (out.grok_step - out.fit_step))
    return {k: v for k, v in at.items() if steps and steps[0] <= v <= steps[-1]}


def forecast_rows(runs: Sequence[store.Run], cal: Calibration, cache: SignalCache | None = None,
                  names: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per run and stage (`ROW_COLUMNS`)."""
    cache = cache or SignalCache(persist=True)
    rows = []
    for i, run in enumerate(runs):
        out = known_outcome(run)
        at = stage_steps(out, run.steps)
        if len(run.steps) < 2 or not at:
            continue
        for view in training_views(run, sorted(set(at.values()))):
            f = forecast_view(view, cal, cache=cache)
            for stage in [k for k, v in at.items() if v == view.at_step]:
                rows.append({"run": names[i] if names else f"{run.path.parent.name}/{run.name}",
                             "family": family_of(run.config), "config": config_key(run.config), "stage": stage,
                             "at_step": view.at_step, "fit_step": out.fit_step, "grok_step": out.grok_step,
                             "outcome": out.kind, "groks": out.grok_step is not None, "regime": f.regime,
                             "state": f.state, "p_generalise": f.p_generalise, "forecast_step": f.grok_step,
                             "low": f.interval[0] if f.interval else None,
                             "high": f.interval[1] if f.interval else None})
    return pd.DataFrame(rows, columns=list(ROW_COLUMNS))


def seed_floor(rows: pd.DataFrame) -> float:
    """The mean |T − median of its config's seeds| / T over ``rows`` whose config has at least two
    seeds that generalise (module docstring); NaN where none has."""
    each = rows.drop_duplicates("run")
    known = each[each.groks]
    medians = known.groupby("config").grok_step.agg(["median", "count"])
    errors = []
    for _, r in rows[rows.groks].iterrows():
        if r.config in medians.index and medians.loc[r.config, "count"] >= 2:
            errors.append(abs(r.grok_step - medians.loc[r.config, "median"]) / r.grok_step)
    return float(np.mean(errors)) if errors else float("nan")


def summarise(rows: pd.DataFrame) -> dict[str, dict[str, float]]:
    """{stage: {runs, grokking, mape, missing, coverage, auroc, floor}} (NaN where a measure has no data)."""
    out = {}
    for stage in STAGES:
        part = rows[rows.stage == stage]
        ahead = part[part.groks & (part.grok_step.astype(float) > part.at_step.astype(float))]
        has = ahead[ahead.forecast_step.notna()]
        truth = has.grok_step.astype(float)
        ape = (has.forecast_step.astype(float) - truth).abs() / truth
        inside = (has.low.astype(float) <= truth) & (truth <= has.high.astype(float))
        out[stage] = {"runs": int(len(part)), "grokking": int(len(ahead)),
                      "mape": float(ape.mean()) if len(ape) else float("nan"),
                      "missing": int(len(ahead) - len(has)),
                      "coverage": float(inside.sum() / len(ahead)) if len(ahead) else float("nan"),
                      "auroc": auroc(part.p_generalise, part.groks) if stage in ("fit", "800") else float("nan"),
                      "floor": seed_floor(ahead) if len(ahead) else float("nan")}
    return out


def _pct(x: float) -> str:
    return "-" if x != x else f"{100 * x:.1f}%"


def _num(x: float) -> str:
    return "-" if x != x else f"{x:.3f}"


def stage_table(rows: pd.DataFrame) -> str:
    """The summary as a markdown table, one row per stage."""
    lines = ["| stage | runs | to generalise after it | MAPE of grok_step | seed floor | no grok_step given | 80% coverage | AUROC of p_generalise |",
             "|---|---|---|---|---|---|---|---|"]
    for stage, v in summarise(rows).items():
        lines.append(f"| {stage} | {v['runs']} | {v['grokking']} | {_pct(v['mape'])} | {_pct(v['floor'])} | {v['missing']} | "
                     f"{_pct(v['coverage'])} | {_num(v['auroc'])} |")
    return "\n".join(lines)


def family_table(rows: pd.DataFrame) -> str:
    """One row per family: runs, generalising runs, MAPE / coverage at fit, 25% and 50%, AUROC at fit."""
    lines = ["| family | runs | generalise | MAPE fit / 25% / 50% | coverage fit / 25% / 50% | AUROC fit |",
             "|---|---|---|---|---|---|"]
    for family in sorted(rows.family.unique(), key=lambda f: (f.split("-")[0], int(f.split("-")[1]) if f.split("-")[1].isdigit() else 0)):
        part = rows[rows.family == family]
        s = summarise(part)
        runs = part.run.nunique()
        gen = part.drop_duplicates("run").groks.sum()
        lines.append(f"| {family} | {runs} | {gen} | " + " / ".join(_pct(s[k]["mape"]) for k in ("fit", "25%", "50%"))
                     + " | " + " / ".join(_pct(s[k]["coverage"]) for k in ("fit", "25%", "50%"))
                     + f" | {_num(s['fit']['auroc'])} |")
    return "\n".join(lines)


def leave_one_family_out(runs: Sequence[store.Run], cache: SignalCache | None = None,
                         prepared: Sequence[RunSamples] | None = None, progress=None) -> tuple[pd.DataFrame, dict]:
    """Forecast rows for every run, each family forecast by a calibration fitted without it
    (module docstring); {family: the calibration used}; and a note for each family that could not
    be scored (the others hold too few grokking runs to fit on)."""
    cache = cache or SignalCache(persist=True)
    prepared = list(prepared) if prepared is not None else [run_samples(run, cache) for run in runs]
    frames, cals, notes = [], {}, []
    families = sorted({p.family for p in prepared})
    for family in families:
        others = [p for p in prepared if p.family != family]
        try:
            cal = fit_from_samples(others, {"left_out": family})
        except UsageError as exc:
            notes.append(f"- family {family} is not scored: without it, {exc}")
            continue
        cals[family] = cal
        mine = [(run, p.name) for run, p in zip(runs, prepared, strict=True) if p.family == family]
        frames.append(forecast_rows([r for r, _ in mine], cal, cache, [n for _, n in mine]))
        if progress is not None:
            progress(family)
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(ROW_COLUMNS))
    return rows, cals, notes


STOP_GRID = ((0.01, 3), (0.02, 3), (0.05, 2), (0.05, 3), (0.05, 5), (0.1, 3), (0.2, 3))
CHECKS_PER_RUN = 50  # as `workbench.training.watch`: a forecast at most every epochs / 50 steps


def forecast_trail(runs: Sequence[store.Run], cals: dict[str, Calibration] | Calibration,
                   cache: SignalCache | None = None) -> pd.DataFrame:
    """Every forecast a training watch would make (`workbench.training.watch`: at checkpoints, at most
    every epochs / 50 steps) for each run, by its family's calibration (``cals``: by family, or one
    for all): rows run, family, at_step, epochs, generalises, p_generalise, regime. A forecast at s
    reads nothing after s, so these are the decisions a live watch would have taken."""
    cache = cache or SignalCache(persist=True)
    rows = []
    for run in runs:
        cal = cals if isinstance(cals, Calibration) else cals[family_of(run.config)]
        every, last, steps = max(1, run.config.epochs // CHECKS_PER_RUN), None, []
        for s in run.steps[1:]:
            if last is None or s - last >= every:
                steps.append(s)
                last = s
        out = known_outcome(run)
        for view in training_views(run, [s for s in steps if s < run.config.epochs]):
            f = forecast_view(view, cal, cache=cache)
            rows.append({"run": f"{run.path.parent.name}/{run.name}", "family": family_of(run.config), "at_step": view.at_step,
                         "epochs": run.config.epochs, "generalises": out.grok_step is not None,
                         "p_generalise": f.p_generalise, "regime": f.regime})
    return pd.DataFrame(rows, columns=["run", "family", "at_step", "epochs", "generalises", "p_generalise", "regime"])


def stop_tradeoff(trail: pd.DataFrame, grid=STOP_GRID) -> pd.DataFrame:
    """For each (threshold, patience): members stopped, members wrongly stopped (ones that generalise
    within their budget) and the share of member-epochs not trained, replaying `StopRule` on ``trail``."""
    hopeless = ("memorisation", "confusion", "no_structure")
    runs = trail.drop_duplicates("run").set_index("run")
    total = float(runs.epochs.sum())
    out = []
    for threshold, patience in grid:
        stopped, wrong, saved = 0, 0, 0.0
        for name, part in trail.groupby("run", sort=False):
            low = 0
            for _, r in part.iterrows():
                low = low + 1 if (r.p_generalise < threshold and r.regime in hopeless) else 0
                if low >= patience:
                    stopped += 1
                    wrong += int(bool(runs.loc[name, "generalises"]))
                    saved += float(runs.loc[name, "epochs"] - r.at_step)
                    break
        out.append({"threshold": threshold, "patience": patience, "stopped": stopped, "wrongly_stopped": wrong,
                    "members": len(runs), "epochs_saved": saved / total if total else float("nan")})
    return pd.DataFrame(out)


def tradeoff_table(frame: pd.DataFrame) -> str:
    lines = ["| p_generalise below | forecasts in a row | members stopped | wrongly stopped (would generalise) | member-epochs saved |",
             "|---|---|---|---|---|"]
    for _, r in frame.iterrows():
        lines.append(f"| {r.threshold:g} | {int(r.patience)} | {int(r.stopped)} of {int(r.members)} | {int(r.wrongly_stopped)} | "
                     f"{_pct(r.epochs_saved)} |")
    return "\n".join(lines)


class Evaluation:
    """The rows of one evaluation, what they were fitted and scored on, and how long it took."""

    def __init__(self, rows: pd.DataFrame, sweeps: Sequence[str], wall_s: float, provenance: dict,
                 train_wall_s: float = float("nan"), unseen: pd.DataFrame | None = None,
                 unseen_sweeps: Sequence[str] = (), calibration: Calibration | None = None, notes: Sequence[str] = (),
                 tradeoff: pd.DataFrame | None = None):
        self.rows, self.sweeps, self.wall_s, self.provenance = rows, list(sweeps), wall_s, provenance
        self.train_wall_s, self.unseen, self.unseen_sweeps = train_wall_s, unseen, list(unseen_sweeps)
        self.calibration, self.notes, self.tradeoff = calibration, list(notes), tradeoff
        self.summary = summarise(rows)

    def page(self) -> str:
        prov = self.provenance
        commit = (prov.get("git_commit") or "unknown")[:10] + (" (with uncommitted changes)" if prov.get("git_dirty") else "")
        lines = [
            "# Forecast evaluation", "",
            "Written by `make forecast-eval` (`python -m workbench forecast-eval --out ...`); do not edit by hand.", "",
            f"- measured: {prov.get('created')}", f"- commit: {commit}", f"- machine: {prov.get('platform')}",
            f"- leave one family out over: {', '.join(self.sweeps)} ({self.rows.run.nunique()} runs, "
            f"{self.rows.family.nunique()} families); fitting and forecasting wall time {self.wall_s:.0f} s; training "
            f"the runs took {self.train_wall_s:.0f} s (their sessions' wall time, a group's shared among its members)",
            "", "Stages, measures and the seed floor: `workbench.forecasting.evaluation`; every row: the .csv beside this page.",
            "", "## Leave one family out", "",
            "Each family (p, operation) forecast by a calibration fitted on all the others.", "", stage_table(self.rows), "",
            "### Per family", "", family_table(self.rows), ""]
        if self.unseen is not None:
            lines += ["## Never fitted on", "",
                      f"{', '.join(self.unseen_sweeps)} ({self.unseen.run.nunique()} runs), forecast by the shipped "
                      "calibration (fitted on every family above).", "", stage_table(self.unseen), ""]
        if self.tradeoff is not None:
            lines += ["## Sweeps that stop waiting", "",
                      "`sweep --stop-hopeless P --patience K` replayed on every run above (each by its family's "
                      "leave-one-out calibration): a member is stopped after K forecasts in a row with p_generalise < P "
                      "in a regime that cannot generalise. Wrongly stopped: members that reach 99% test accuracy "
                      "within their budget.", "", tradeoff_table(self.tradeoff), ""]
        lines += list(self.notes)
        return "\n".join(lines)

    def write(self, path: Path) -> None:
        """The page at ``path`` and its rows at ``path`` with suffix ``.csv``."""
        store.write_text(Path(path), self.page())
        rows = self.rows.assign(scored="leave-one-family-out")
        if self.unseen is not None:
            rows = pd.concat([rows, self.unseen.assign(scored="never fitted on")], ignore_index=True)
        store.write_table(Path(path).with_suffix(".csv"), rows)


def training_wall_s(runs: Sequence[store.Run]) -> float:
    """The runs' training time (`store.Run.training_wall_s`), summed."""
    return sum(run.training_wall_s for run in runs)


def evaluate(runs: Sequence[store.Run], sweeps: Sequence[str], unseen: Sequence[store.Run] = (),
             unseen_sweeps: Sequence[str] = (), calibration: Calibration | None = None, progress=None) -> Evaluation:
    """Leave one family out over ``runs``; and, where given, ``unseen`` forecast by ``calibration``
    (default: one fitted on all of ``runs``)."""
    t0 = time.perf_counter()
    cache = SignalCache(persist=True)
    prepared = [run_samples(run, cache) for run in runs]
    rows, cals, notes = leave_one_family_out(runs, cache, prepared, progress)
    scored = [run for run in runs if family_of(run.config) in cals]
    tradeoff = stop_tradeoff(forecast_trail(scored, cals, cache))
    unseen_rows = None
    if unseen:
        cal = calibration or fit_from_samples(prepared, {"sweeps": list(sweeps)})
        unseen_rows = forecast_rows(list(unseen), cal, cache)
    wall = time.perf_counter() - t0
    return Evaluation(rows, sweeps, wall, store.new_provenance(runs[0].config) if runs else {},
                      training_wall_s([*runs, *unseen]), unseen_rows, unseen_sweeps, calibration, notes, tradeoff)

