"""Which checkpoints to compare: named pairs (``--ref``/``--target``) or everything a sweep produced.

For a sweep, per seed: the base against every SFT length (``trunk``) and each SFT length against the
previous one (``step``, the rotation rate along the trunk); per finished RL cell: its starting SFT
checkpoint against the RL result (``rl``) and the base against the RL result (``rl-base``: did RL turn
the directions back towards the base?).
"""

from __future__ import annotations

import json
from pathlib import Path

from raysweep.config import ConfigError, RaysweepConfig, load_config
from raysweep.spectral.analysis import Pair


def describe(ckpt: str | Path) -> str:
    """A short label: ``seed0/sft80`` for a trunk checkpoint, ``rl:<run id>`` for an RL result, else the
    directory's name."""
    from raysweep.train.trunk import read_manifest

    p = Path(ckpt)
    man = read_manifest(p) or {}
    if "trunk_id" in man and "step" in man and p.parent.name == "checkpoints":
        return f"seed{man['seed']}/sft{man['step']}"
    if p.name == "final" and (p.parent / "parent.json").is_file():
        return f"rl:{p.parent.name}"
    return p.name


def checkpoint_config(ckpt: str | Path) -> Path | None:
    """The ``config.yaml`` of the run that wrote ``ckpt`` (a trunk's or an RL run's), if any."""
    p = Path(ckpt).resolve()
    for d in (p, p.parent, p.parent.parent, p.parent.parent.parent):
        if (d / "config.yaml").is_file() and (d / "results.jsonl").is_file():
            return d / "config.yaml"
    return None


def resolve_checkpoint(spec: str) -> str:
    """A checkpoint directory (checked to hold safetensors weights), or a model spec resolved to one."""
    from raysweep import models
    from raysweep.spectral.weights import tensor_files

    path = Path(spec).resolve() if Path(spec).is_dir() else models.resolve(spec)
    tensor_files(path)
    return str(path)


def named_pairs(ref: str, targets: list[str]) -> list[Pair]:
    ref_path = resolve_checkpoint(ref)
    out = []
    for t in targets:
        tp = resolve_checkpoint(t)
        out.append(Pair("pair", ref_path, tp, describe(ref_path), describe(tp)))
    return out


def sweep_config(sdir: Path, overrides: list[str] | None = None) -> RaysweepConfig:
    if not (sdir / "config.yaml").is_file() or not (sdir / "cells.json").is_file():
        raise ConfigError(f"{sdir}: not a sweep directory (no config.yaml and cells.json); give the directory "
                          "`raysweep run` printed, e.g. outputs/sweeps/<name>")
    return load_config(sdir / "config.yaml", overrides)


def base_checkpoint(cfg: RaysweepConfig, tdir: Path) -> str:
    """The trunk's step-0 checkpoint if the sweep has one, else the base model's directory."""
    from raysweep.train import trunk as T

    c = T.checkpoint_dir(tdir, 0)
    if (c / "manifest.json").is_file():
        return str(c)
    from raysweep.train.pretrain import base_model_path

    return base_model_path(cfg)


def trunk_pairs(cfg: RaysweepConfig, tdir: Path, seed: int) -> tuple[list[Pair], list[str], str]:
    """A trunk's pairs: base vs every finished SFT length, and each length vs the previous one; what is not
    finished yet; the base checkpoint."""
    from raysweep.train import trunk as T

    done = sorted(T.finished_steps(tdir))
    missing = [f"trunk seed {seed} SFT {s}" for s in cfg.sft.checkpoints if s not in done]
    base = base_checkpoint(cfg, tdir)
    pairs = []
    prev, prev_step = base, 0
    for s in (s for s in done if s > 0):
        c = str(T.checkpoint_dir(tdir, s))
        pairs.append(Pair("trunk", base, c, f"seed{seed}/base", f"seed{seed}/sft{s}", seed, s))
        if prev_step > 0:
            pairs.append(Pair("step", prev, c, f"seed{seed}/sft{prev_step}", f"seed{seed}/sft{s}", seed, s, prev_step))
        prev, prev_step = c, s
    return pairs, missing, base


def trunk_config(tdir: Path, overrides: list[str] | None = None) -> tuple[RaysweepConfig, int]:
    """The config a trunk was trained with, and its seed."""
    tdir = Path(tdir)
    if not (tdir / "config.yaml").is_file() or not (tdir / "checkpoints").is_dir():
        raise ConfigError(f"{tdir}: not a trunk directory (config.yaml, checkpoints/); give "
                          "<output_dir>/trunks/<trunk_id>/seed-<s>")
    if not tdir.name.startswith("seed-"):
        raise ConfigError(f"{tdir}: a trunk directory is named seed-<s>")
    return load_config(tdir / "config.yaml", overrides), int(tdir.name.split("-", 1)[1])


def sweep_trunks(cfg: RaysweepConfig) -> list[tuple[int, Path]]:
    from raysweep.sweep.plan import Cell, lineage

    return [(seed, Path(lineage(cfg, Cell(seed, cfg.sft.checkpoints[0]))["trunk_dir"])) for seed in cfg.sft.seeds]


def sweep_pairs(sdir: Path, cfg: RaysweepConfig) -> tuple[list[Pair], list[str]]:
    """Every pair the sweep's finished checkpoints make; and what is not there yet."""
    from raysweep.sweep.plan import plan_cells
    from raysweep.train.rl import is_finished

    pairs: list[Pair] = []
    missing: list[str] = []
    bases: dict[int, str] = {}
    for seed, tdir in sweep_trunks(cfg):
        tp, tm, bases[seed] = trunk_pairs(cfg, tdir, seed)
        pairs += tp
        missing += tm
    jobs = json.loads((sdir / "cells.json").read_text())
    for cell in plan_cells(cfg):
        job = json.loads(Path(jobs[cell.name]).read_text())
        rdir = Path(job["run_dir"])
        if not is_finished(rdir):
            missing.append(f"cell {cell.name}")
            continue
        start, final = str(Path(job["start_path"])), str(rdir / "final")
        label = f"seed{cell.seed}/sft{cell.sft_step}"
        pairs.append(Pair("rl", start, final, label, f"rl:{cell.name}", cell.seed, cell.sft_step, cell=cell.name))
        pairs.append(Pair("rl-base", bases[cell.seed], final, f"seed{cell.seed}/base", f"rl:{cell.name}",
                          cell.seed, cell.sft_step, cell=cell.name))
    return pairs, missing
