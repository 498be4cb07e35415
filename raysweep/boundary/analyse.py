"""A sweep's recovery analysis: per cell the paired before/after difference and the recovery ratio,
per trunk the accuracy peak, per RL setting and rule the recovery window (over seeds).

Reads only files the sweep wrote: each cell's starting checkpoint's ``eval.json`` (before RL), its RL
run's final ``evals/step-<k>.json`` (after RL), and each trunk's ``results.jsonl`` (the curve along SFT
and the evaluation loss). The maths is in :mod:`raysweep.boundary.metrics` and
:mod:`raysweep.boundary.window`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from raysweep.tasks.protocol import task_of
from raysweep.boundary.metrics import Diff, compare_records, over_seeds, ratio
from raysweep.boundary.window import Peak, Window, find_peak, recovery_window
from raysweep.config import RaysweepConfig, load_config
from raysweep.sweep.plan import Cell, lineage, plan_cells


@dataclass(frozen=True)
class CellRecovery:
    cell: Cell
    rule: str
    before: float
    after: float
    diff: Diff
    ratio: tuple[float, float, float] | None  # (value, low, high) relative to the trunk's peak
    verdicts_before: dict[str, int] = field(default_factory=dict)  # verdict counts of the answers, SFT checkpoint
    verdicts_after: dict[str, int] = field(default_factory=dict)  # ... and after RL
    first: Diff | None = None  # with task.attempts > 1: the paired recovery of accuracy at attempt 1
    first_before: dict[str, int] = field(default_factory=dict)  # with task.attempts > 1: the first attempts' verdicts
    first_after: dict[str, int] = field(default_factory=dict)
    update: dict | None = None  # RL update / SFT drift and the angle change (raysweep.spectral.update); None: unknown
    min_update: float = 0.0  # boundary.min_rl_update

    @property
    def update_ratio(self) -> float | None:
        return None if self.update is None else self.update.get("ratio")

    @property
    def too_weak(self) -> bool:
        """RL moved the weights too little, against SFT's drift, to test recovery (the cell never counts as "does
        not recover")."""
        return self.update_ratio is not None and self.update_ratio < self.min_update

    def row(self) -> dict:
        r = {"cell": self.cell.name, **self.cell.params(), "rule": self.rule, "before": self.before,
             "after": self.after, "recovery": self.diff.value, "recovery_low": self.diff.low,
             "recovery_high": self.diff.high, "n": self.diff.n}
        r.update(dict(zip(("ratio", "ratio_low", "ratio_high"), self.ratio or (None, None, None))))
        u = self.update or {}
        r.update({"rl_update_over_sft_drift": u.get("ratio"), "rl_update": u.get("rl_update"),
                  "sft_drift": u.get("sft_drift"), "angle_change_deg": u.get("angle_change"),
                  "too_weak": self.too_weak})
        if self.first is not None:
            r.update({"recovery_attempt1": self.first.value, "recovery_attempt1_low": self.first.low,
                      "recovery_attempt1_high": self.first.high})
        return r


@dataclass
class Analysis:
    cfg: RaysweepConfig
    threshold: float
    cells: list[CellRecovery] = field(default_factory=list)
    peaks: dict[tuple[int, str], Peak] = field(default_factory=dict)  # (seed, rule) -> the trunk's peak
    curves: dict[tuple[int, str], list[tuple[int, float, float, float]]] = field(default_factory=dict)
    losses: dict[int, dict[int, float]] = field(default_factory=dict)  # seed -> step -> evaluation loss
    # (settings, rule) -> {sft_length: difference over seeds}
    recovery: dict[tuple[tuple, str], dict[int, Diff]] = field(default_factory=dict)
    # with task.attempts > 1, the same at attempt 1 (the headline is within every attempt)
    recovery_first: dict[tuple[tuple, str], dict[int, Diff]] = field(default_factory=dict)
    windows: dict[tuple[tuple, str], Window] = field(default_factory=dict)
    # (settings, rule) -> SFT lengths where RL was too weak to test recovery in some seed and did not recover
    weak: dict[tuple[tuple, str], set[int]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # cells without a final evaluation yet
    # (seed, rule) -> accuracy at the trunk's last length − at its peak, paired over the same problems
    falls: dict[tuple[int, str], Diff] = field(default_factory=dict)
    # (seed, rule) -> sft_length -> {verdict: count}: what the answers got wrong along the trunk
    verdicts: dict[tuple[int, str], dict[int, dict[str, int]]] = field(default_factory=dict)
    # the same for the first attempt alone (multi-attempt evaluations: the verdicts above are the last attempt's)
    first_verdicts: dict[tuple[int, str], dict[int, dict[str, int]]] = field(default_factory=dict)


def trunk_curve(tdir: Path, rule: str, records: list[dict] | None = None
                ) -> tuple[list[tuple[int, float, float, float]], dict[int, float]]:
    """(sft_length, accuracy, low, high) of ``rule`` along a trunk, and the evaluation loss by length
    (``rule``'s expert-answer loss: the test loss a practitioner would watch). ``records``: the trunk's
    ``results.jsonl``, if already read."""
    from raysweep.plots import eval_series
    from raysweep.train import trunk as T

    records = list(T.read_results(tdir)) if records is None else records
    curve = eval_series(records).get(rule, [])
    losses = {}
    for r in records:
        if r.get("kind") == "checkpoint" and r["eval"].get(rule, {}).get("loss") is not None:
            losses[r["step"]] = r["eval"][rule]["loss"]
    return curve, losses


def trunk_verdicts(records: list[dict], rule: str) -> dict[int, dict[str, int]]:
    """Verdict counts of ``rule``'s evaluation at each SFT length, from a trunk's ``results.jsonl`` records."""
    return {r["step"]: dict(r["eval"][rule]["verdicts"]) for r in records
            if r.get("kind") == "checkpoint" and r["eval"].get(rule, {}).get("verdicts")}


class EvalFiles:
    """``eval.json`` files read at most once: an analysis asks for a checkpoint's evaluation for its fall, its
    first attempts and as an RL cell's start."""

    def __init__(self) -> None:
        self._read: dict[Path, dict | None] = {}

    def __call__(self, path: Path) -> dict | None:
        """The evaluation in ``path``; None when it is missing."""
        path = Path(path)
        if path not in self._read:
            self._read[path] = json.loads(path.read_text()) if path.is_file() else None
        return self._read[path]

    def checkpoint(self, tdir: Path, step: int) -> dict | None:
        from raysweep.train import trunk as T

        return self(T.checkpoint_dir(tdir, step) / "eval.json")


def first_attempt_verdicts(tdir: Path, rules: list[str], steps: list[int], evals: EvalFiles | None = None
                           ) -> dict[str, dict[int, dict[str, int]]]:
    """Per rule, verdict counts of the first attempts of the multi-attempt evaluation at each SFT length in
    ``steps``, from the checkpoints' ``eval.json`` records (each sample's attempts, in order)."""
    evals = evals or EvalFiles()
    out: dict[str, dict[int, dict[str, int]]] = {}
    for step in steps:
        evaluation = evals.checkpoint(tdir, step)
        if evaluation is None:
            continue
        for rule in rules:
            counts = first_attempt_counts(evaluation.get(rule, {}).get("records", []))
            if counts:
                out.setdefault(rule, {})[step] = counts
    return out


def first_attempt_counts(records: list[dict]) -> dict[str, int]:
    """Verdict counts of the first attempt of every episode in an evaluation's ``records`` (pure; {} for a
    single-attempt evaluation, whose records hold no episodes)."""
    counts: dict[str, int] = {}
    for rec in records:
        for episode in rec.get("attempts") or []:
            if episode:
                counts[episode[0]["verdict"]] = counts.get(episode[0]["verdict"], 0) + 1
    return counts


def mean_verdict_shares(by_seed: list[dict[int, dict[str, int]]]) -> dict[int, tuple[dict[str, float], int]]:
    """Per SFT length: each verdict's share of answers, averaged over the trunks that have that length,
    and how many trunks that is (pure)."""
    out: dict[int, tuple[dict[str, float], int]] = {}
    for step in sorted({s for d in by_seed for s in d}):
        rows = [d[step] for d in by_seed if step in d]
        shares = [{v: c / max(1, sum(row.values())) for v, c in row.items()} for row in rows]
        names = sorted({v for sh in shares for v in sh})
        out[step] = ({v: sum(sh.get(v, 0.0) for sh in shares) / len(shares) for v in names}, len(rows))
    return out


def trunk_fall(tdir: Path, rule: str, peak_step: int, last_step: int, evals: EvalFiles | None = None
               ) -> Diff | None:
    """Accuracy at the trunk's last length minus at its peak, paired by evaluation problem (each
    checkpoint's ``eval.json``); None where either evaluation is missing."""
    evals = evals or EvalFiles()
    peak, last = ((evals.checkpoint(tdir, s) or {}).get(rule) for s in (peak_step, last_step))
    if not peak or not last:
        return None
    return compare_records(peak["records"], last["records"])


def final_eval_file(rdir: Path) -> Path | None:
    """The RL run's last evaluation with every problem's answers (``evals/step-<k>.json``, the largest k)."""
    files = list((rdir / "evals").glob("step-*.json")) if (rdir / "evals").is_dir() else []
    return max(files, key=lambda p: int(p.stem.split("-")[1]), default=None)


def analyse(sweep_dir: str | Path, threshold: float | None = None) -> Analysis:
    """Analyse the sweep in ``sweep_dir`` (finished cells; the others are listed in ``missing``).
    ``threshold``: default the config's ``boundary.threshold``."""
    from raysweep.train import trunk as T
    from raysweep.train.rl import is_finished

    sdir = Path(sweep_dir)
    cfg = load_config(sdir / "config.yaml")
    threshold = cfg.boundary.threshold if threshold is None else threshold
    jobs = json.loads((sdir / "cells.json").read_text())
    out = Analysis(cfg, threshold)
    rules = list(task_of(cfg.task).eval_sets)
    attempts = task_of(cfg.task).attempts
    evals = EvalFiles()
    for seed in cfg.sft.seeds:
        tdir = Path(lineage(cfg, Cell(seed, cfg.sft.checkpoints[0]))["trunk_dir"])
        records = list(T.read_results(tdir))  # once per trunk, for every rule's curve and verdicts
        for rule in rules:
            curve, losses = trunk_curve(tdir, rule, records)
            if curve:
                out.curves[(seed, rule)] = curve
                out.peaks[(seed, rule)] = find_peak(curve, losses)
                fall = trunk_fall(tdir, rule, out.peaks[(seed, rule)].step, curve[-1][0], evals)
                if fall is not None:
                    out.falls[(seed, rule)] = fall
            verdicts = trunk_verdicts(records, rule)
            if verdicts:
                out.verdicts[(seed, rule)] = verdicts
            if rule == rules[0]:
                out.losses[seed] = losses
        if attempts > 1:
            steps = sorted({c[0] for rule in rules for c in out.curves.get((seed, rule), [])})
            for rule, by_step in first_attempt_verdicts(tdir, rules, steps, evals).items():
                out.first_verdicts[(seed, rule)] = by_step
    per: dict[tuple[tuple, str], dict[int, list[Diff]]] = {}
    per_first: dict[tuple[tuple, str], dict[int, list[Diff]]] = {}
    weak: dict[tuple[tuple, str], set[int]] = {}
    for cell in plan_cells(cfg):
        job = json.loads(Path(jobs[cell.name]).read_text())
        rdir = Path(job["run_dir"])
        after_file = final_eval_file(rdir)
        if not is_finished(rdir) or after_file is None:
            out.missing.append(cell.name)
            continue
        before_all = evals(Path(job["start_path"]) / "eval.json")
        if before_all is None:  # the start checkpoint's evaluation is gone: nothing to compare with
            out.missing.append(cell.name)
            continue
        after_all = json.loads(after_file.read_text())
        update = cell_update_of(cfg, job, rdir)
        for rule in rules:
            d = compare_records(before_all[rule]["records"], after_all[rule]["records"])
            before, after = before_all[rule]["summary"]["accuracy"], after_all[rule]["summary"]["accuracy"]
            peak = out.peaks.get((cell.seed, rule))
            first = (compare_records(before_all[rule]["records"], after_all[rule]["records"], within=1)
                     if attempts > 1 else None)
            out.cells.append(CellRecovery(cell, rule, before, after, d,
                                          ratio(d, before, peak.accuracy) if peak else None,
                                          dict(before_all[rule]["summary"].get("verdicts", {})),
                                          dict(after_all[rule]["summary"].get("verdicts", {})), first,
                                          first_attempt_counts(before_all[rule]["records"]),
                                          first_attempt_counts(after_all[rule]["records"]), update,
                                          cfg.boundary.min_rl_update))
            if out.cells[-1].too_weak:
                weak.setdefault((cell.settings, rule), set()).add(cell.sft_step)
            per.setdefault((cell.settings, rule), {}).setdefault(cell.sft_step, []).append(d)
            if first is not None:
                per_first.setdefault((cell.settings, rule), {}).setdefault(cell.sft_step, []).append(first)
    for key, by_step in per.items():
        out.recovery[key] = {step: over_seeds(ds) for step, ds in sorted(by_step.items())}
        # a length RL was too weak to test (in any seed) and that does not recover says nothing either way
        out.weak[key] = {s for s in weak.get(key, set()) if not out.recovery[key][s].low > threshold}
        out.windows[key] = recovery_window(out.recovery[key], threshold, out.weak[key])
    for key, by_step in per_first.items():
        out.recovery_first[key] = {step: over_seeds(ds) for step, ds in sorted(by_step.items())}
    return out


def cell_update_of(cfg: RaysweepConfig, job: dict, rdir: Path) -> dict | None:
    """The cell's RL update / SFT drift as its trial stored it; for a run made before trials stored it, computed now
    from its three checkpoints where they are still there."""
    from raysweep.spectral.update import base_of, has_weights, read_update

    if (rdir / "update.json").is_file():
        return read_update(rdir)
    if not all(has_weights(d) for d in (rdir / "final", Path(job["start_path"]))):
        return None
    return read_update(rdir, base_of(cfg, job), job["start_path"], cfg.spectral, cfg.boundary.update_angles)


def settings_label(settings: tuple) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings) or "(fixed)"


def summary_text(a: Analysis) -> str:
    """The window per RL setting and rule, the peaks, and what the loss would have chosen."""
    lines = []
    for (seed, rule), p in sorted(a.peaks.items()):
        pick = {True: "would", False: "would not", None: "(no loss recorded)"}[p.loss_picks_peak]
        there = ("" if p.loss_picks_peak is None or p.loss_step == p.step else
                 f" (accuracy {p.loss_step_accuracy:.3f} there, {'inside' if p.loss_picks_peak else 'below'} the "
                 "peak's interval)")
        lines.append(f"trunk seed {seed}, {rule}: peak {p.accuracy:.3f} [{p.low:.3f}, {p.high:.3f}] at SFT length "
                     f"{p.step}; the lowest evaluation loss is at {p.loss_step}{there}, so choosing by loss {pick} "
                     "find it")
    for (settings, rule), w in sorted(a.windows.items(), key=lambda kv: (kv[0][1], str(kv[0][0]))):
        lines.append(f"{rule}, {settings_label(settings)}: {w.describe()}")
        weak = sorted(a.weak.get((settings, rule), ()))
        if weak:
            lines.append(f"{rule}, {settings_label(settings)}: RL from SFT length{'s' if len(weak) > 1 else ''} "
                         f"{', '.join(map(str, weak))} was too weak to test recovery (RL update / SFT drift under "
                         f"{a.cfg.boundary.min_rl_update:g} in some seed): not counted as 'does not recover'")
    if a.missing:
        lines.append(f"not run or not finished (left out): {', '.join(a.missing)}")
    return "\n".join(lines)
