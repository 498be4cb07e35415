"""``raysweep rl``: one RL job (GRPO or RLOO) from one SFT checkpoint, as a Ray Train run of :func:`rl_worker`.

Layout (``<output_dir>/rl/<run_id>/``)::

    config.yaml, job.json    the resolved config and what the workers read
    parent.json              the starting checkpoint: its path and manifest (the run's lineage)
    results.jsonl            per-step reward/KL/length records, ID/OOD evaluations, resumes
    mlflow_run_id            the run's MLflow run (resumed, never duplicated)
    trainer/                 the trainer's resumable state (latest only)
    final/                   the trained policy, HF format, + manifest.json (written last: the run is finished)

``run_id`` hashes the start (trunk id, seed and SFT step, or the checkpoint's path), the model, the task
and the RL settings that shape the trajectory, so the same request resumes the same run.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from raysweep.tasks.protocol import task_of
from raysweep.config import ConfigError, RaysweepConfig
from raysweep.train import trunk as T
from raysweep.train.record import close_open_run
from raysweep.train.sft import config_trunk_dir, for_workers, model_identity


@dataclass(frozen=True)
class Start:
    """Where an RL run starts: a model directory and, for trunk checkpoints, its manifest."""

    path: Path
    manifest: dict | None
    spec: str

    def identity(self) -> dict:
        m = self.manifest
        if m and "trunk_id" in m:
            return {"trunk_id": m["trunk_id"], "seed": m["seed"], "step": m["step"]}
        return {"path": str(self.path)}

    def describe(self) -> str:
        m = self.manifest
        if m and "trunk_id" in m:
            return f"trunk {m['trunk_id']} seed {m['seed']} SFT step {m['step']}"
        return str(self.path)


def resolve_start(cfg: RaysweepConfig) -> Start:
    """The checkpoint named by ``rl.trunk`` + ``rl.sft_step`` or ``rl.checkpoint``; errors name the fix."""
    rl = cfg.rl
    if rl.sft_step is not None:
        if rl.trunk:
            tdir, which = Path(rl.trunk).resolve(), f"rl.trunk={rl.trunk}"
        else:
            seed = cfg.sft.seeds[0] if rl.sft_seed is None else rl.sft_seed
            tdir, which = config_trunk_dir(cfg, seed), f"this config's trunk (seed {seed})"
        if not (tdir / "checkpoints").is_dir():
            raise ConfigError(f"{which}: no trunk at {tdir} (expected <output_dir>/trunks/<trunk_id>/seed-<s> with "
                              "checkpoints/); train it with `raysweep sft` and the same config first, or name one "
                              "with rl.trunk=<dir>")
        cdir = T.checkpoint_dir(tdir, rl.sft_step)
        manifest = T.read_manifest(cdir)
        if manifest is None:
            raise ConfigError(f"rl.sft_step={rl.sft_step}: the trunk has no finished checkpoint at that step; "
                              f"finished steps: {sorted(T.finished_steps(tdir))}")
        problem = T.checkpoint_problem(cdir)
        if problem:
            raise ConfigError(f"rl.sft_step={rl.sft_step}: the trunk's checkpoint is damaged ({problem}); it cannot "
                              f"be trusted or redone in place: delete the trunk {tdir} to retrain it, or start from "
                              "another SFT length")
        return Start(cdir, manifest, str(cdir))
    if rl.checkpoint:
        from raysweep import models

        try:
            path = models.resolve(rl.checkpoint)
        except models.ModelError as exc:
            raise ConfigError(f"rl.checkpoint={rl.checkpoint}: {exc}") from None
        problem = T.checkpoint_problem(Path(path))
        if problem:
            raise ConfigError(f"rl.checkpoint={rl.checkpoint}: damaged ({problem})")
        return Start(Path(path).resolve(), T.read_manifest(Path(path)), rl.checkpoint)
    raise ConfigError("rl: name the starting checkpoint: rl.sft_step=<k> (this config's trunk, or rl.trunk=<dir>), "
                      "or rl.checkpoint=<checkpoint dir | model spec>")


def run_id(cfg: RaysweepConfig, start: Start) -> str:
    return T.digest({"start": start.identity(), "model": model_identity(cfg), "task": cfg.task.identity(),
                     "rl": cfg.rl.identity()})


def run_dir(cfg: RaysweepConfig, rid: str) -> Path:
    return Path(cfg.output_dir).resolve() / "rl" / rid


def is_finished(rdir: Path) -> bool:
    return (rdir / "final" / "manifest.json").is_file()


def _trunk_run_id(start: Start) -> str | None:
    """The MLflow run of the trunk the start came from (for lineage tags)."""
    m = start.manifest or {}
    f = Path(m.get("trunk_dir", "/nonexistent")) / "mlflow_run_id"
    return f.read_text().strip() if f.is_file() else None


def plan_job(cfg: RaysweepConfig, parent_run_id: str | None = None) -> dict:
    """What the RL workers need: the config (absolute paths), the start, the run directory."""
    if cfg.rl.grid:
        raise ConfigError(f"rl.grid={cfg.rl.grid}: a grid is for sweeps; `raysweep rl` trains one run, so set "
                          "the values directly (e.g. rl.learning_rate=3e-6) or drop rl.grid")
    start = resolve_start(cfg)
    if task_of(cfg.task).attempts > 1:  # an episode budget that cannot hold every attempt: refused before any work
        from raysweep.models import load_tokenizer
        from raysweep.train.rl_worker import budgets

        budgets(cfg, load_tokenizer(str(start.path)))
    exclude: list[str] = []
    if cfg.rl.prompts == "unseen":  # a start whose SFT examples cannot be re-made: refused before any work
        from raysweep.train.rl_prompts import trunk_sft_problems

        exclude = sorted(trunk_sft_problems(start.manifest))
    rid = run_id(cfg, start)
    return {"config": json.loads(for_workers(cfg).model_dump_json()), "run_id": rid,
            "run_dir": str(run_dir(cfg, rid)), "start_path": str(start.path), "start_spec": start.spec,
            "start_manifest": start.manifest, "start_identity": start.identity(), "start": start.describe(),
            "trunk_run_id": _trunk_run_id(start), "parent_run_id": parent_run_id,
            "exclude_problems": exclude}  # rl.prompts=unseen: the start trunk's SFT problems


def write_job(job: dict, cfg: RaysweepConfig) -> Path:
    rdir = Path(job["run_dir"])
    path = T.write_job(rdir, job, cfg.to_yaml())
    T.write_json_atomic(rdir / "parent.json", {"path": job["start_path"], "spec": job["start_spec"],
                                                "manifest": job["start_manifest"]})
    return path


def before_after(rdir: Path) -> str:
    """ID/OOD accuracy at every evaluated step of an RL run, from its results file (latest record per step)."""
    rows = {r["step"]: r for r in T.read_results(rdir) if r.get("kind") == "eval"}
    if not rows:
        return "(no evaluations recorded)"
    rules = list(dict.fromkeys(rule for r in rows.values() for rule in r["eval"]))  # step 0 may hold more sets
    out = [f"{'step':>6}" + "".join(f"  {rule + ' acc [95% CI]':<30}" for rule in rules)]
    for step in sorted(rows):
        line = f"{step:>6}"
        for rule in rules:
            e = rows[step]["eval"].get(rule)
            line += (f"  {e['accuracy']:.3f} [{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}] n={e['n']:<6}" if e
                     else f"  {'-':<30}")
        out.append(line)
    return "\n".join(out)


def launch(job: dict) -> Path:
    """Train (or resume) the planned RL run ``job`` on Ray Train workers; a finished run is not redone."""
    from raysweep.train.launch import run_on_workers
    from raysweep.train.rl_worker import rl_worker

    cfg = RaysweepConfig.model_validate(job["config"])
    rdir = Path(job["run_dir"])
    tag = f"[rl {cfg.rl.algorithm} {job['run_id']}]"
    if is_finished(rdir):
        print(f"{tag} already finished: {rdir}", file=sys.stderr)
        close_open_run(cfg, rdir, tag.strip("[]"), "reward")
        return rdir
    print(f"{tag} from {job['start']} -> {rdir}", file=sys.stderr)
    t0 = time.time()
    run_on_workers(rl_worker, job, cfg.rl, name=f"rl-{job['run_id']}", output_dir=cfg.output_dir)
    print(f"{tag} done in {time.time() - t0:.0f}s: {rdir}", file=sys.stderr)
    return rdir


def run_rl(cfg: RaysweepConfig, parent_run_id: str | None = None) -> Path:
    """Plan, train (or resume) one RL run and print its before/after; return its directory."""
    job = plan_job(cfg, parent_run_id)
    write_job(job, cfg)
    rdir = launch(job)
    print(f"# rl {job['run_id']}  from {job['start']}  {rdir}\n{before_after(rdir)}")
    return rdir
