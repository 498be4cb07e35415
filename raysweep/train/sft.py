"""``raysweep sft``: one SFT trunk per seed, each a Ray Train run of :func:`sft_worker`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from raysweep.config import ConfigError, RaysweepConfig
from raysweep.tracking import check_reachable, tracking_uri
from raysweep.train import trunk as T
from raysweep.train.record import close_open_run


def for_workers(cfg: RaysweepConfig) -> RaysweepConfig:
    """The config as workers must see it: workers run in another directory (Ray's) and maybe on another
    machine, so the output directory and the MLflow URI are made absolute here, on the driver. (Evaluation
    pools too small for ``eval.n`` were refused when the config loaded.)"""
    out = Path(cfg.output_dir).resolve()
    tracking = cfg.tracking.model_copy(update={"uri": tracking_uri(cfg.tracking, out)})
    if tracking.enabled:
        check_reachable(tracking.uri)  # a dead MLflow server fails here, in seconds, before any training
    return cfg.model_copy(update={"output_dir": str(out), "tracking": tracking})


def model_identity(cfg: RaysweepConfig) -> str | dict:
    """What the trunks start from: ``model.name``, or it and the pre-training trunk that prepares it."""
    if not cfg.pretrain.steps:
        return cfg.model.name
    from raysweep.train.pretrain import stage_config

    return {"base": cfg.model.name, "pretrain": config_trunk_id(stage_config(cfg)),
            "pretrain_seed": cfg.pretrain.seed, "pretrain_steps": cfg.pretrain.steps}


def config_trunk_id(cfg: RaysweepConfig) -> str:
    """The trunk this config's ``model``, ``pretrain``, ``task`` and ``sft`` sections define (the RL reward
    scheme is not part of it: SFT never sees a reward)."""
    return T.trunk_id(model_identity(cfg), cfg.task.identity(exclude={"reward"}), cfg.sft.identity())


def config_trunk_dir(cfg: RaysweepConfig, seed: int) -> Path:
    return T.trunk_dir(cfg.output_dir, config_trunk_id(cfg), seed)


def plan_jobs(cfg: RaysweepConfig, model_path: str, parent_run_id: str | None = None) -> list[dict]:
    """One job per seed: what a worker needs to train or resume that seed's trunk."""
    tid = config_trunk_id(cfg)
    config = json.loads(for_workers(cfg).model_dump_json())
    return [{"config": config, "seed": seed, "trunk_id": tid, "model_path": model_path,
             "trunk_dir": str(T.trunk_dir(cfg.output_dir, tid, seed)), "parent_run_id": parent_run_id}
            for seed in cfg.sft.seeds]


def write_job(job: dict, cfg: RaysweepConfig) -> Path:
    """Create the trunk directory with its resolved config and job file (what torchrun's worker reads)."""
    return T.write_job(Path(job["trunk_dir"]), job, cfg.to_yaml())


def curve_table(tdir: Path) -> str:
    """The trunk's ID/OOD curve from its results file: one row per checkpoint."""
    rows = [r for r in T.read_results(tdir) if r.get("kind") == "checkpoint"]
    rules = list(rows[0]["eval"]) if rows else []
    head = f"{'step':>6}" + "".join(f"  {rule + ' acc [95% CI]':<26}{rule + ' loss':>10}" for rule in rules)
    out = [head]
    for r in sorted(rows, key=lambda r: r["step"]):
        line = f"{r['step']:>6}"
        for rule in rules:
            e = r["eval"][rule]
            line += f"  {e['accuracy']:.3f} [{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}] n={e['n']:<5}{e['loss']:>10.4f}"
        out.append(line)
    return "\n".join(out)


def run_sft(cfg: RaysweepConfig, parent_run_id: str | None = None) -> list[Path]:
    """Train or resume every seed's trunk; return their directories. Finished trunks are skipped."""
    from raysweep.train.launch import run_on_workers
    from raysweep.train.pretrain import base_model_path, run_pretrain
    from raysweep.train.sft_worker import sft_worker

    if cfg.pretrain.steps:
        run_pretrain(cfg, parent_run_id)  # finished already: found, not retrained
    model_path = base_model_path(cfg)  # build/convert once, on the driver
    dirs = []
    for job in plan_jobs(cfg, model_path, parent_run_id):
        tdir = write_job(job, cfg).parent
        missing = [k for k in cfg.sft.checkpoints if k not in T.finished_steps(tdir)]
        if not missing:
            print(f"[sft seed={job['seed']}] all checkpoints finished in {tdir}; nothing to do", file=sys.stderr)
            close_open_run(cfg, tdir, f"sft seed={job['seed']}", "loss")
        else:
            t0 = time.time()
            run_on_workers(sft_worker, job, cfg.sft, name=f"sft-{job['trunk_id']}-seed{job['seed']}",
                           output_dir=cfg.output_dir)
            print(f"[sft seed={job['seed']}] trunk done in {time.time() - t0:.0f}s: {tdir}", file=sys.stderr)
        print(f"# trunk seed={job['seed']}  {tdir}\n{curve_table(tdir)}")
        dirs.append(tdir)
    return dirs
