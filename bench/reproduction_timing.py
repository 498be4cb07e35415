"""Benchmark: where a reproduction sweep's wall time went (SFT, RL, evaluation, spectral, orchestration).

Reads only what ``raysweep run`` left on disk: the sweep's ``results.jsonl`` (wall time of each phase of
each invocation), every trunk's ``results.jsonl`` (train-loss records with timestamps, checkpoint
evaluations with their seconds) and every RL run's ``results.jsonl`` (train seconds, evaluations).
Orchestration is what is left: Ray start-up, Tune scheduling, worker start-up, dataset building, model
loading and saving. Usage (one or more sweep directories; results appended as one section each):

    python bench/reproduction_timing.py outputs/sweeps/reproduce-cpu [outputs/sweeps/reproduce-smollm2]
        [--out bench/results/reproduction_timing]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from raysweep.config import load_config
from raysweep.train import trunk as T


def _records(path: Path) -> list[dict]:
    return list(T.read_results(path)) if (path / "results.jsonl").is_file() else []


def _eval_seconds(record: dict) -> float:
    """Seconds the record's evaluation took; a set read from an earlier evaluation of the same weights
    (``reused``: the base's, by another seed's trunk) took none here."""
    reused = set(record.get("reused") or ())
    return sum(e.get("seconds", 0.0) for rule, e in (record.get("eval") or {}).items() if rule not in reused)


def _inside(t: float, windows: list[tuple[float, float]]) -> bool:
    return any(lo <= t <= hi for lo, hi in windows)


def trunk_times(tdir: Path, windows: list[tuple[float, float]]) -> dict:
    """Training and evaluation time of a trunk spent inside the sweep's invocations (``windows``); what the
    sweep found finished (trained earlier, by another command) is counted apart as ``earlier_steps``."""
    rows = _records(tdir)
    train = [r["time"] for r in rows if r.get("kind") == "train"]
    evals = [r for r in rows if r.get("kind") == "checkpoint" and _inside(r["time"], windows)]
    train_s = 0.0
    for lo, hi in windows:
        ts = [t for t in train if lo <= t <= hi]
        if len(ts) > 1:  # checkpoints inside the training span interrupt it: their evaluation is not training
            inside = sum(_eval_seconds(r) for r in evals if min(ts) < r["time"] <= max(ts))
            train_s += max(max(ts) - min(ts) - inside, 0.0)
    steps = sum(_inside(t, windows) for t in train)
    return {"steps": steps, "earlier_steps": len(train) - steps, "train_s": train_s,
            "eval_s": sum(_eval_seconds(r) for r in evals), "evaluations": len(evals)}


def rl_times(rdir: Path, windows: list[tuple[float, float]]) -> dict:
    rows = _records(rdir)
    done = next((r for r in rows if r.get("kind") == "done"), {})
    if done and not _inside(done.get("time", 0.0), windows):
        return {"steps": 0, "earlier_steps": done.get("max_steps", 0), "train_s": 0.0, "eval_s": 0.0, "evaluations": 0}
    evals = [r for r in rows if r.get("kind") == "eval" and not r.get("reused_from")]
    train_s = done.get("train_seconds", 0.0)
    # evaluations run by the trainer's callback (eval_every, the last step) fall inside train_seconds
    start = done.get("time", 0.0) - train_s - 2.0
    inside = sum(r.get("eval_seconds", 0.0) for r in evals if start <= r.get("time", 0.0) <= done.get("time", 0.0))
    return {"steps": done.get("max_steps", 0), "earlier_steps": 0, "train_s": max(train_s - inside, 0.0),
            "eval_s": sum(r.get("eval_seconds", 0.0) for r in evals), "evaluations": len(evals),
            "span": [rows[0]["time"], done["time"]] if done else None}


def sweep_times(sdir: Path) -> dict:
    from raysweep.sweep.plan import lineage, plan_cells
    from raysweep.train.pretrain import stage_trunk_dir
    from raysweep.train.sft import config_trunk_dir

    cfg = load_config(sdir / "config.yaml")
    inv = [r for r in _records(sdir) if r.get("kind") == "invocation"]
    # each invocation's record is written at its end: its span is the wall time before that
    windows = [(r["time"] - r["wall_s"] - r.get("report_s", 0.0) - r.get("spectral_s", 0.0) - 5.0, r["time"] + 5.0)
               for r in inv]
    trunks = {f"seed {s}": trunk_times(config_trunk_dir(cfg, s), windows) for s in cfg.sft.seeds}
    if cfg.pretrain.steps:
        trunks["pre-training"] = trunk_times(stage_trunk_dir(cfg), windows)
    jobs = json.loads((sdir / "cells.json").read_text())
    cells = {c.name: rl_times(Path(json.loads(Path(jobs[c.name]).read_text())["run_dir"]), windows) for c in plan_cells(cfg)}
    wall = sum(r["wall_s"] + r.get("report_s", 0.0) + r.get("spectral_s", 0.0) for r in inv)
    spans = [v["span"] for v in cells.values() if v.get("span")]
    rl_wall = max(hi for _, hi in spans) - min(lo for lo, _ in spans) if spans else 0.0
    parts = {
        "pre-training (train)": trunks.get("pre-training", {}).get("train_s", 0.0),
        "SFT (train)": sum(v["train_s"] for k, v in trunks.items() if k != "pre-training"),
        "SFT + pre-training evaluation": sum(v["eval_s"] for v in trunks.values()),
        "RL (train)": sum(v["train_s"] for v in cells.values()),
        "RL evaluation": sum(v["eval_s"] for v in cells.values()),
        "report": sum(r.get("report_s", 0.0) for r in inv),
        "spectral": sum(r.get("spectral_s", 0.0) for r in inv),
    }
    parts["orchestration (the rest)"] = max(wall - sum(parts.values()), 0.0)
    _ = lineage  # (cells' run directories come from cells.json, written by the sweep)
    return {"sweep": str(sdir), "model": cfg.model.name, "invocations": len(inv), "wall_s": wall, "parts": parts,
            "rl_wall_s": rl_wall,
            "trunks": trunks, "cells": cells}


def markdown(res: dict) -> str:
    lines = [f"## {Path(res['sweep']).name} (`{res['model']}`)", "",
             f"{res['invocations']} invocation(s) of `raysweep run`, {res['wall_s'] / 60:.1f} min of wall time in all.", "",
             "| part | seconds | share |", "|---|---:|---:|"]
    for k, v in res["parts"].items():
        lines.append(f"| {k} | {v:.0f} | {v / max(res['wall_s'], 1e-9):.0%} |")
    timed = sum(v for k, v in res["parts"].items() if not k.startswith("orchestration"))
    if timed > res["wall_s"]:
        lines += ["", f"The parts sum to {timed / 60:.1f} min, more than the wall time: some ran at the same time "
                      "(concurrent trials), so orchestration cannot be told apart here."]
    if res.get("rl_wall_s"):
        cell_s = res["parts"]["RL (train)"] + res["parts"]["RL evaluation"]
        lines += ["", f"The RL cells ran from the first one's start to the last one's end in {res['rl_wall_s']:.0f} s "
                      f"of wall time ({res['rl_wall_s'] / 60:.1f} min) for {cell_s:.0f} s of cell time (training and "
                      "evaluation, summed over cells; start-up not counted)."]
    lines += ["", "Steps trained before the sweep (found finished, by an earlier command) are counted apart, not timed.", "",
              "| stage | steps | found finished | train s | s/step | evaluations | eval s |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, v in list(res["trunks"].items()) + list(res["cells"].items()):
        per = v["train_s"] / v["steps"] if v["steps"] else 0.0
        lines.append(f"| {name} | {v['steps']} | {v['earlier_steps']} | {v['train_s']:.0f} | {per:.2f} | "
                     f"{v['evaluations']} | {v['eval_s']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sweeps", nargs="+")
    ap.add_argument("--out", default="bench/results/reproduction_timing")
    args = ap.parse_args()
    results = [sweep_times(Path(s)) for s in args.sweeps]
    meta = {"machine": platform.machine(), "cpu_count": __import__("os").cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M")}
    Path(args.out + ".json").write_text(json.dumps({"meta": meta, "sweeps": results}, indent=1))
    text = (f"# Reproduction sweeps: where the time went ({meta['cpu_count']} CPU cores, {meta['date']})\n\n"
            "Made by `python bench/reproduction_timing.py " + " ".join(args.sweeps) + "` from the sweeps' own "
            "records. Orchestration is Ray/Tune/worker start-up, data building, model loading and saving.\n\n"
            + "\n".join(markdown(r) for r in results))
    Path(args.out + ".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
