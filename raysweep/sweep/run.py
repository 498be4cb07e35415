"""``raysweep run`` / ``raysweep resume``: SFT trunks, then a Ray Tune grid of RL trials, one table.

Layout (``<sweep.storage or output_dir/sweeps>/<name>/``; with a cloud URI as ``sweep.storage``, a local
working copy in ``<output_dir>/sweeps/<name>`` mirrored there, see :mod:`raysweep.sweep.storage`)::

    config.yaml        the resolved sweep config (``raysweep resume <dir>`` reads it back)
    cells.json         cell name -> its RL job file (what each trial runs)
    mlflow_run_id      the sweep's parent MLflow run; trunks and trials are its children
    trials/            Ray Tune's experiment state (Tuner.restore continues it)
    results.csv        one row per cell: start and final ID/OOD accuracy with intervals, lineage
    results.jsonl      one record per invocation (run or resume): wall time of each phase
    accuracy_vs_sft.png  per rule, accuracy against SFT length after SFT and after RL per grid setting

Phase 1 trains (or finds) one trunk per seed. Phase 2 is a Tune experiment whose function trials each
launch the RL stage's TorchTrainer (the trial driver holds no CPU or GPU; its workers do) for one cell.
Every trial is idempotent: a finished RL run is reported, not retrained, and an interrupted one resumes
from its last checkpoint, so a rerun or ``resume`` redoes nothing finished.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from raysweep.tasks.protocol import task_of
from raysweep.config import ConfigError, RaysweepConfig, load_config
from raysweep.plots import plot_sweep
from raysweep.redact import redact
from raysweep.sweep.plan import Cell, cell_config, lineage, plan_cells, resource_plan
from raysweep.sweep.progress import LiveView
from raysweep.sweep.storage import SweepStorage, child_uri, is_uri, read_remote_text
from raysweep.train import trunk as T


def sweep_name(cfg: RaysweepConfig) -> str:
    """``sweep.name``, or ``sweep-<hash>`` of what the sweep trains (not where it lives or logs)."""
    if cfg.sweep.name:
        return cfg.sweep.name
    what = cfg.model_copy(update={"sweep": cfg.sweep.model_copy(update={"max_concurrent_trials": None,
                                                                          "storage": None})})
    data = json.loads(what.model_dump_json(exclude={"tracking", "output_dir", "boundary"}))
    data["sweep"].pop("label", None)  # a caption: not what the sweep trains (and added later: old names stay)
    return "sweep-" + T.digest(data)


def sweep_storage(cfg: RaysweepConfig) -> SweepStorage:
    return SweepStorage.for_sweep(cfg.sweep.storage, cfg.output_dir, sweep_name(cfg))


def sweep_dir(cfg: RaysweepConfig) -> Path:
    """The sweep's local directory (with a cloud ``sweep.storage``, the working copy mirrored there)."""
    return sweep_storage(cfg).local


def _parent_run(cfg: RaysweepConfig, sdir: Path) -> str | None:
    """The sweep's MLflow parent run (created once, found again on resume)."""
    if not cfg.tracking.enabled:
        return None
    import mlflow

    from raysweep.train.record import config_params
    from raysweep.tracking import start_run

    run = start_run(cfg.tracking, cfg.output_dir, sdir / "mlflow_run_id", f"sweep/{sdir.name}", config_params(cfg),
                    {"raysweep.kind": "sweep", "raysweep.sweep_dir": str(sdir)}, {"config.yaml": cfg.to_yaml()})
    mlflow.end_run()
    # the parent stays RUNNING while the sweep's trunks and trials run (they are its children); `finish`
    # ends it, so in the UI it spans the sweep (a resume reopens it and ends it again)
    mlflow.tracking.MlflowClient().update_run(run.info.run_id, status="RUNNING")
    return run.info.run_id


def final_metrics(rdir: Path) -> dict:
    """A finished RL run's start and final ID/OOD accuracy (flat, for Tune and the results table)."""
    evals = {r["step"]: r["eval"] for r in T.read_results(rdir) if r.get("kind") == "eval"}
    if not evals:
        return {}
    out = {}
    for label, step in (("start", min(evals)), ("final", max(evals))):
        for rule, e in evals[step].items():
            out[f"{rule}_acc_{label}"] = e["accuracy"]
            out[f"{rule}_ci_low_{label}"], out[f"{rule}_ci_high_{label}"] = e["ci95"]
            out[f"{rule}_n"] = e["n"]
    from raysweep.spectral.update import read_update

    update = read_update(rdir)  # stored by the trial when RL ended
    if update is not None and update.get("ratio") is not None:
        out["rl_update_over_sft_drift"] = update["ratio"]
    return out


def rl_trial(config: dict) -> None:
    """One Tune trial: the RL run of one cell (trained, resumed, or found finished), then its metrics."""
    from ray import tune

    from raysweep.train.rl import launch

    job = json.loads(Path(json.loads(Path(config["cells_file"]).read_text())[config["cell"]]).read_text())
    rdir = launch(job)
    tune.report({"cell": config["cell"], **final_metrics(rdir)})


def results_table(cfg: RaysweepConfig, cells: list[Cell], jobs: dict[str, dict]) -> list[dict]:
    """One row per cell, from the RL runs on disk (not from Tune: it survives any restart)."""
    from raysweep.train.rl import is_finished

    rows = []
    for cell in cells:
        job = jobs[cell.name]
        rdir = Path(job["run_dir"])
        rows.append({"cell": cell.name, **cell.params(), "finished": is_finished(rdir), **final_metrics(rdir),
                     "rl_run_dir": str(rdir), "start_checkpoint": lineage(cfg, cell)["checkpoint"],
                     "mlflow_run_id": (rdir / "mlflow_run_id").read_text().strip()
                     if (rdir / "mlflow_run_id").is_file() else ""})
    return rows


def write_table(rows: list[dict], path: Path) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    T.write_text_atomic(path, buf.getvalue())


def summary(rows: list[dict], rules: tuple[str, ...]) -> str:
    head = f"{'cell':<48}" + "".join(f"{rule + ' start -> final':>24}" for rule in rules) + "  RL update / SFT drift"
    out = [head]
    for r in rows:
        line = f"{r['cell']:<48}"
        for rule in rules:
            if f"{rule}_acc_final" in r:
                line += f"{r[f'{rule}_acc_start']:>12.3f} -> {r[f'{rule}_acc_final']:.3f}  "
            else:
                line += f"{'(not run / not finished)':>24}"
        if r.get("rl_update_over_sft_drift") is not None:
            line += f"  {r['rl_update_over_sft_drift']:.2f}"
        out.append(line)
    return "\n".join(out)


@dataclass
class Prepared:
    """A sweep ready for its RL trials: config, cells, storage, parent MLflow run, trunks trained, every
    cell's RL job planned (``cells.json``)."""

    cfg: RaysweepConfig
    cells: list[Cell]
    store: SweepStorage
    parent: str | None
    jobs: dict[str, dict]
    t0: float
    t_sft: float

    @property
    def sdir(self) -> Path:
        return self.store.local


def prepare(cfg: RaysweepConfig, what: str = "sweep") -> Prepared:
    """Phase 1 of ``raysweep run`` and ``raysweep boundary``: resolve and save the config, find or create
    the parent MLflow run, train (or find) the trunks, plan every cell's RL job."""
    from raysweep.train.rl import plan_job, write_job
    from raysweep.train.sft import for_workers, run_sft

    cfg = for_workers(cfg)  # absolute output directory and tracking URI: trials and `resume` run elsewhere
    cells = plan_cells(cfg)  # validates every grid combination before anything runs
    if task_of(cfg.task).attempts > 1:  # the episode budget, before the trunks train (the base's tokenizer is theirs)
        from raysweep import models
        from raysweep.train.rl_worker import budgets

        tokenizer = models.load_tokenizer(str(models.resolve(cfg.model.name)))
        for cell in cells:
            budgets(cell_config(cfg, cell), tokenizer)
    store = sweep_storage(cfg)
    store.check(field="sweep.storage" if cfg.sweep.storage else "output_dir")  # seconds, before anything trains
    sdir = store.local
    sdir.mkdir(parents=True, exist_ok=True)
    pulled = store.pull()  # a resume on another machine: the parent run id, the invocation records
    T.write_text_atomic(sdir / "config.yaml", cfg.to_yaml())
    t0 = time.time()
    parent = _parent_run(cfg, sdir)
    store.push()
    print(f"[{what}] {sdir.name}: {len(cfg.sft.seeds)} trunk(s), {len(cells)} RL cell(s) -> {sdir}"
          + (f" (mirrored to {redact(store.remote)}{'; pulled ' + ', '.join(pulled) if pulled else ''})"
             if store.remote else ""), file=sys.stderr)
    run_sft(cfg, parent_run_id=parent)
    t_sft = time.time() - t0
    jobs = {}
    for cell in cells:
        ccfg = cell_config(cfg, cell)
        job = plan_job(ccfg, parent)
        job["cell"] = cell.name
        job["run_name"] = cell.run_name(cfg.rl.algorithm)
        jobs[cell.name] = job
        write_job(job, ccfg)
    T.write_json_atomic(sdir / "cells.json", {name: str(Path(j["run_dir"]) / "job.json") for name, j in jobs.items()})
    store.push()
    return Prepared(cfg, cells, store, parent, jobs, t0, t_sft)


def trial_resources(prep: Prepared, n_trials: int, what: str = "sweep"):
    """Join or start Ray; the resource plan of the RL trials (printed) and the Tune trainable's resources."""
    import ray

    from raysweep.train.launch import cluster_has_gpus, ensure_ray

    ensure_ray()
    cfg = prep.cfg
    use_gpu = cluster_has_gpus() if cfg.rl.use_gpu is None else cfg.rl.use_gpu
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    plan = resource_plan(cfg.rl, nodes, n_trials, use_gpu, cfg.sweep.max_concurrent_trials)
    print(f"[{what}] each trial: {plan.per_trial} in {len(plan.bundles) - 1} worker bundle(s); "
          f"{plan.max_concurrent} at once (limited by {plan.limited_by})", file=sys.stderr)
    return plan, {"cpu": 0, "memory": cfg.sweep.trial_memory_mb * 2**20}


def report_failures(grid, what: str = "sweep") -> None:
    for result in grid:
        if result.error is not None:
            print(f"[{what}] trial {result.config.get('cell') or result.config} failed: {result.error!r}",
                  file=sys.stderr)


def run_sweep(cfg: RaysweepConfig) -> Path:
    """Run (or continue) the sweep; return its directory."""
    from ray import tune

    prep = prepare(cfg)
    cfg, cells, store, sdir, jobs = prep.cfg, prep.cells, prep.store, prep.sdir, prep.jobs
    plan, resources = trial_resources(prep, len(cells))
    trainable = tune.with_resources(rl_trial, resources)
    storage_path, fs = store.tune_storage()
    path = f"{storage_path}/trials"
    if tune.Tuner.can_restore(path, storage_filesystem=fs):
        print(f"[sweep] continuing the Tune experiment in {redact(store.remote or storage_path)}/trials",
              file=sys.stderr)
        tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True,
                                   storage_filesystem=fs)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space={"cell": tune.grid_search([c.name for c in cells]), "cells_file": str(sdir / "cells.json")},
            tune_config=tune.TuneConfig(max_concurrent_trials=plan.max_concurrent,
                                        trial_name_creator=lambda t: t.config["cell"],
                                        trial_dirname_creator=lambda t: t.config["cell"]),
            run_config=tune.RunConfig(name="trials", storage_path=storage_path, storage_filesystem=fs,
                                      verbose=0,  # LiveView reports progress
                                      failure_config=tune.FailureConfig(max_failures=cfg.sweep.max_failures)),
        )
    with LiveView(cells, [Path(jobs[c.name]["run_dir"]) for c in cells], cfg.rl.max_steps):
        report_failures(tuner.fit())
    return finish(prep)


def finish(prep: Prepared, what: str = "sweep", require_all: bool = True) -> Path:
    """The results table, plots, report and MLflow records of a sweep's invocation; with ``require_all``,
    raise if a cell did not finish."""
    cfg, cells, store, sdir = prep.cfg, prep.cells, prep.store, prep.sdir
    rows = results_table(cfg, cells, prep.jobs)
    write_table(rows, sdir / "results.csv")
    plot_sweep(rows, task_of(cfg.task).eval_sets, sdir / "accuracy_vs_sft.png", sdir.name)
    wall = time.time() - prep.t0
    if prep.parent:
        try:
            sync_tracking(cfg, cells, prep.jobs)  # what MLflow missed while it was down
            _log_parent(cfg, prep.parent, sdir, sum(r["finished"] for r in rows))
        except Exception as exc:  # noqa: BLE001 - every result is on disk; the next resume or `raysweep sync` logs it
            print(f"[{what}] MLflow did not take the sweep's records ({redact(repr(exc))[:300]}); they are in {sdir}: "
                  f"`raysweep sync {sdir}` logs them later", file=sys.stderr)
    t_spectral = time.time()
    if cfg.spectral.in_sweep:  # before the report, whose findings table reads it
        try:
            from raysweep.spectral.report import spectral_sweep

            spectral_sweep(sdir)
        except Exception as exc:  # noqa: BLE001 - the sweep's results are saved; the analysis can be redone
            print(f"[{what}] the spectral analysis failed ({exc!r}); `raysweep spectral --sweep {sdir}` redoes it",
                  file=sys.stderr)
    t_report = time.time()
    try:
        from raysweep.boundary.report import write_report

        write_report(sdir)
    except Exception as exc:  # noqa: BLE001 - as above
        print(f"[{what}] the report failed ({exc!r}); `raysweep report {sdir}` redoes it", file=sys.stderr)
    t_end = time.time()
    if prep.parent:  # a boundary search (require_all=False) runs only the cells it chooses: it is complete anyway
        end_parent(cfg, prep.parent, all(r["finished"] for r in rows) or not require_all)
    T.append_result(sdir, {"kind": "invocation", "mode": what, "wall_s": wall, "sft_phase_s": prep.t_sft,
                           "rl_phase_s": wall - prep.t_sft, "report_s": t_end - t_report,
                           "spectral_s": t_report - t_spectral, "cells": len(cells),
                           "finished": sum(r["finished"] for r in rows)})
    store.push()
    print(f"# {what} {sdir.name}  ({wall:.0f}s; results: {sdir / 'results.csv'}"
          + (f", mirrored to {redact(store.remote)}" if store.remote else "") + ")")
    print(summary(rows, task_of(cfg.task).eval_sets))
    missing = [r["cell"] for r in rows if not r["finished"]]
    if missing and require_all:
        raise RuntimeError(f"{len(missing)} cell(s) did not finish: {missing}; `raysweep resume {sdir}` continues")
    return sdir


def end_parent(cfg: RaysweepConfig, parent: str, complete: bool) -> None:
    """End the sweep's parent run now (FINISHED when ``complete``, else KILLED: cells did not finish, and a resume
    continues it)."""
    from mlflow.tracking import MlflowClient

    from raysweep.tracking import tracking_uri

    try:
        MlflowClient(tracking_uri(cfg.tracking, cfg.output_dir)).set_terminated(
            parent, "FINISHED" if complete else "KILLED")
    except Exception as exc:  # noqa: BLE001 - the sweep's results are on disk; only the run's end time is lost
        print(f"[sweep] MLflow did not take the parent run's end ({redact(repr(exc))[:200]})", file=sys.stderr)


def _log_parent(cfg: RaysweepConfig, parent: str, sdir: Path, finished: int) -> None:
    from mlflow.tracking import MlflowClient

    from raysweep.tracking import tracking_uri

    client = MlflowClient(tracking_uri(cfg.tracking, cfg.output_dir))
    for name in ("results.csv", "accuracy_vs_sft.png"):
        if (sdir / name).is_file():
            client.log_artifact(parent, str(sdir / name))
    client.log_metric(parent, "sweep/cells_finished", finished)


def sync_tracking(cfg: RaysweepConfig, cells: list[Cell], jobs: dict[str, dict]) -> int:
    """Log to MLflow what it missed while it was down, for every trunk and RL run of the sweep (see
    :mod:`raysweep.train.tracking_outbox`); how many runs were synced."""
    from raysweep.train.rl import is_finished
    from raysweep.train.tracking_outbox import sync_run

    n = 0
    for seed in cfg.sft.seeds:
        tdir = Path(lineage(cfg, Cell(seed, cfg.sft.checkpoints[0]))["trunk_dir"])
        done = set(cfg.sft.checkpoints) <= T.finished_steps(tdir)
        n += sync_run(cfg, tdir, f"sft seed={seed}", "loss", finished=done)
    for cell in cells:
        rdir = Path(jobs[cell.name]["run_dir"])
        n += sync_run(cfg, rdir, f"rl {cell.name}", "reward", finished=is_finished(rdir))
    return n


def sync_sweep(sweep_dir: str | Path) -> int:
    """``raysweep sync``: log what MLflow missed for every run of the sweep in ``sweep_dir``."""
    sdir = Path(sweep_dir)
    if not (sdir / "config.yaml").is_file() or not (sdir / "cells.json").is_file():
        raise ConfigError(f"{sdir}: not a sweep directory (config.yaml, cells.json)")
    cfg = load_config(sdir / "config.yaml")
    if not cfg.tracking.enabled:
        raise ConfigError(f"{sdir}: this sweep has tracking.enabled=false; there is nothing to sync")
    jobs = {name: json.loads(Path(f).read_text()) for name, f in json.loads((sdir / "cells.json").read_text()).items()}
    cells = [c for c in plan_cells(cfg) if c.name in jobs]
    n = sync_tracking(cfg, cells, jobs)
    if (sdir / "mlflow_run_id").is_file():
        rows = results_table(cfg, cells, jobs)
        _log_parent(cfg, (sdir / "mlflow_run_id").read_text().strip(), sdir, sum(r["finished"] for r in rows))
    print(f"[sync] {n} run(s) of {sdir.name} had results MLflow missed; all logged" if n else
          f"[sync] nothing pending in {sdir.name}: MLflow has every result")
    return n


def resume_sweep(location: str | Path) -> Path:
    """Continue the sweep at ``location`` (its local directory, or its URI in a cloud ``sweep.storage``)
    from its saved config; nothing finished is redone."""
    import tempfile

    if is_uri(str(location)):
        text = read_remote_text(child_uri(str(location), "config.yaml"))
        if text is None:
            raise ConfigError(f"{redact(str(location))}: not a sweep (no config.yaml there); start one with "
                              "`raysweep run`")
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "config.yaml").write_text(text)
            cfg = load_config(Path(tmp) / "config.yaml")
        return run_sweep(cfg)
    f = Path(location) / "config.yaml"
    if not f.is_file():
        raise ConfigError(f"{location}: not a sweep directory (no config.yaml); start one with `raysweep run`")
    return run_sweep(load_config(f))
