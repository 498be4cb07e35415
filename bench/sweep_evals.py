"""A sweep's evaluations as the bench scripts read them: every trunk checkpoint's ``eval.json`` and every RL
cell's final evaluation, with where each came from (no model is loaded)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Evaluation:
    seed: int
    step: int  # the SFT length (of the checkpoint itself, or of the one the RL cell started from)
    cell: str | None  # the RL cell's name; None for a trunk checkpoint
    trunk_dir: Path
    path: Path

    @property
    def when(self) -> str:
        return f"SFT {self.step}" if self.cell is None else f"after RL ({self.cell})"

    def read(self) -> dict:
        return json.loads(self.path.read_text())


def sweep_evaluations(sdir: Path, steps=None):
    """(the sweep's config, its evaluations): trunk checkpoints (only ``steps`` when given), then RL cells."""
    from raysweep.boundary.analyse import final_eval_file
    from raysweep.config import load_config
    from raysweep.sweep.plan import Cell, lineage
    from raysweep.train import trunk as T

    cfg = load_config(sdir / "config.yaml")
    out = []
    for seed in cfg.sft.seeds:
        tdir = Path(lineage(cfg, Cell(seed, cfg.sft.checkpoints[0]))["trunk_dir"])
        for step in sorted(T.finished_steps(tdir)):
            f = T.checkpoint_dir(tdir, step) / "eval.json"
            if f.is_file() and (steps is None or step in steps):
                out.append(Evaluation(seed, step, None, tdir, f))
    cells = json.loads((sdir / "cells.json").read_text()) if (sdir / "cells.json").is_file() else {}
    for name, job in sorted(cells.items()):
        job = json.loads(Path(job).read_text())
        f = final_eval_file(Path(job["run_dir"]))
        start = job["start_manifest"]
        if f is not None:
            out.append(Evaluation(start["seed"], start["step"], name, Path(start["trunk_dir"]), f))
    return cfg, out


def command_line(doc: str, argv: list[str] | None):
    """The bench scripts' shared arguments (a sweep directory, ``--out``), parsed: (args, config, evaluations)."""
    import argparse

    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("sweep", help="a sweep directory")
    p.add_argument("--out", help="write <out>.md and <out>.json")
    args = p.parse_args(argv)
    return (args, *sweep_evaluations(Path(args.sweep)))


def write_results(out: str | None, text: str, data) -> None:
    """Print ``text``; with ``--out``, also write it to <out>.md and ``data`` to <out>.json."""
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out + ".md").write_text(text)
        Path(out + ".json").write_text(json.dumps(data, indent=1) + "\n")
