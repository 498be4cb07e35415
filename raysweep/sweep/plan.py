"""Sweep planning, pure: the grid of cells, their names, configs and lineage, and the resource plan.

A sweep's cells are every (seed × SFT length × combination of ``rl.grid``): seeds and SFT lengths come
from ``sft.seeds`` and ``sft.checkpoints`` (or the subset ``sweep.rl_from``), the RL settings from ``rl`` with the grid's values applied.
Each cell is one RL run (a Tune trial) that starts from its trunk's checkpoint. Nothing here touches
Ray, MLflow or the disk, so all of it is unit-tested without them.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from pydantic import ValidationError

from raysweep.config import ConfigError, RaysweepConfig
from raysweep.train.rl_config import RLConfig


def expand_grid(grid: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the first key varying slowest (``{}`` -> ``[{}]``)."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ",".join(f"{k}{_fmt(v)}" for k, v in value.items())
    return str(value)


@dataclass(frozen=True)
class Cell:
    """One cell of the sweep: an RL run from SFT length ``sft_step`` of seed ``seed``'s trunk."""

    seed: int
    sft_step: int
    settings: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        """A stable, filesystem-safe trial name, e.g. ``seed0-sft40-learning_rate=3e-06``."""
        parts = [f"seed{self.seed}", f"sft{self.sft_step}"] + [f"{k}={_fmt(v)}" for k, v in self.settings]
        return re.sub(r"[^A-Za-z0-9_.=,+-]", "_", "-".join(parts))

    def run_name(self, algorithm: str) -> str:
        """The MLflow run name of the cell's RL run, its settings readable: ``rl/grpo/seed=0/sft=20/learning_rate=1e-4``
        (``algorithm``: the config's, unless the grid sets it)."""
        algo = dict(self.settings).get("algorithm", algorithm)
        rest = "".join(f"/{k}={_fmt(v)}" for k, v in self.settings if k != "algorithm")
        return f"rl/{algo}/seed={self.seed}/sft={self.sft_step}{rest}"

    def params(self) -> dict[str, Any]:
        """The cell's coordinates, under the same flat names in every trial (MLflow's compare view)."""
        return {"sft.seed": self.seed, "rl.sft_step": self.sft_step, **{f"rl.{k}": v for k, v in self.settings}}


def plan_cells(cfg: RaysweepConfig) -> list[Cell]:
    """Every cell of the sweep, ordered by seed, then SFT length, then grid combination; each checked."""
    lengths = [s for s in cfg.sft.checkpoints if cfg.sweep.rl_from is None or s in cfg.sweep.rl_from]
    cells = [Cell(seed, step, tuple(combo.items()))
             for seed in cfg.sft.seeds for step in lengths for combo in expand_grid(cfg.rl.grid)]
    for combo in expand_grid(cfg.rl.grid):  # fail before anything runs, naming the combination
        cell_config(cfg, Cell(cfg.sft.seeds[0], cfg.sft.checkpoints[0], tuple(combo.items())))
    return cells


def cell_config(cfg: RaysweepConfig, cell: Cell) -> RaysweepConfig:
    """The config of one cell's RL run: ``rl`` with the cell's values, its start (this config's trunk at
    the cell's seed and SFT length) and no grid."""
    data = cfg.rl.model_dump(mode="json")
    data.update({"grid": {}, "checkpoint": None, "trunk": None, "sft_step": cell.sft_step, "sft_seed": cell.seed,
                 **dict(cell.settings)})
    try:
        rl = RLConfig.model_validate(data)
    except ValidationError as exc:
        msgs = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise ConfigError(f"rl.grid: the combination {dict(cell.settings)} is invalid: {msgs}") from None
    return cfg.model_copy(update={"rl": rl})


def lineage(cfg: RaysweepConfig, cell: Cell) -> dict[str, str]:
    """Where a cell starts: its trunk (id, directory) and the checkpoint of its SFT length."""
    from raysweep.train import trunk as T
    from raysweep.train.sft import config_trunk_dir

    tdir = config_trunk_dir(cfg, cell.seed)
    return {"trunk_id": tdir.parent.name, "trunk_dir": str(tdir),
            "checkpoint": str(T.checkpoint_dir(tdir, cell.sft_step))}


# --------------------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class ResourcePlan:
    """What one trial holds and how many trials run at once.

    ``bundles``: the trial's placement group: the trial driver (a Tune function trial that only waits on
    its TorchTrainer) then one bundle per training worker. ``max_concurrent``: trials that fit the
    cluster at once (and no more than asked, nor than there are trials).
    """

    bundles: tuple[dict[str, float], ...]
    per_trial: dict[str, float]
    max_concurrent: int
    limited_by: str


def resource_plan(rl: RLConfig, nodes: Sequence[Mapping[str, float]], n_trials: int, use_gpu: bool,
                  max_concurrent: int | None = None) -> ResourcePlan:
    """Plan trial resources against the cluster's nodes (each node's resources, e.g. from ``ray.nodes()``).

    A worker bundle must fit on one node, so capacity is counted in worker slots node by node; a trial
    needs ``rl.num_workers`` slots. Raises if one trial cannot fit, naming the fields to change.
    """
    worker = {"CPU": float(rl.cpus_per_worker), **({"GPU": 1.0} if use_gpu else {})}
    bundles = ({"CPU": 0.0},) + tuple(dict(worker) for _ in range(rl.num_workers))  # the driver: memory only
    per_trial: dict[str, float] = {}
    for b in bundles:
        for k, v in b.items():
            per_trial[k] = per_trial.get(k, 0.0) + v
    slots = sum(min(math.floor(float(node.get(k, 0.0)) / v + 1e-9) for k, v in worker.items()) for node in nodes)
    need = f"{rl.cpus_per_worker} CPU" + (" + 1 GPU" if use_gpu else "")
    if slots < rl.num_workers:
        biggest = max((dict(n) for n in nodes), key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
        raise ConfigError(
            f"one trial needs rl.num_workers={rl.num_workers} workers of {need} each (rl.cpus_per_worker), each on "
            f"one node, but the cluster's {len(nodes)} node(s) hold {slots} such worker(s) (largest node: "
            f"{ {k: v for k, v in biggest.items() if k in ('CPU', 'GPU')} }): lower rl.num_workers or "
            "rl.cpus_per_worker, or add nodes")
    limits = {"cluster": slots // rl.num_workers, "trials": max(1, n_trials)}
    if max_concurrent:
        limits["max_concurrent_trials"] = max_concurrent
    limited_by = min(limits, key=lambda k: limits[k])
    return ResourcePlan(bundles=bundles, per_trial=per_trial, max_concurrent=limits[limited_by],
                        limited_by=limited_by)
