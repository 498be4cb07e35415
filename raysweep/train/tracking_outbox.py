"""What MLflow missed while it was down, kept beside the run and logged later.

A stage run never stops because MLflow went away: every metric it sends is first appended to
``<run_dir>/mlflow_metrics.jsonl`` and the run's name, tags and params to ``mlflow_run.json``; when a
call to MLflow fails, the run marks itself ``mlflow_pending`` and goes on without MLflow (its results
file and checkpoints are complete). :func:`sync_run` later creates the MLflow run if it never got one,
logs exactly the (metric, step) values the server lacks, the final artifacts of a finished run, and
ends it; the sweep does this for every pending run at its end (so ``raysweep resume`` catches up), and
``raysweep sync`` does it on demand.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

JOURNAL = "mlflow_metrics.jsonl"
PENDING = "mlflow_pending"
RUN_SPEC = "mlflow_run.json"


def journal(run_dir: Path, metrics: dict[str, float], step: int) -> None:
    with open(run_dir / JOURNAL, "a") as f:  # a line of its own even after a line a kill cut short
        f.write("\n" + json.dumps({"step": step, "time_ms": int(time.time() * 1000), "metrics": metrics}))
        f.flush()


def mark_pending(run_dir: Path, reason: str) -> None:
    from raysweep.train.trunk import write_json_atomic

    write_json_atomic(run_dir / PENDING, {"since": time.time(), "reason": reason[:1000]})


def is_pending(run_dir: Path) -> bool:
    return (run_dir / PENDING).is_file()


def journal_values(run_dir: Path) -> dict[tuple[str, int], tuple[float, int]]:
    """(metric, step) -> (value, time in ms): the last value journalled for each (a line cut by a kill is
    skipped)."""
    out: dict[tuple[str, int], tuple[float, int]] = {}
    f = run_dir / JOURNAL
    if not f.is_file():
        return out
    for line in f.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        for k, v in rec["metrics"].items():
            out[(k, int(rec["step"]))] = (float(v), int(rec["time_ms"]))
    return out


def sync_run(cfg, run_dir: Path, title: str, train_metric: str, finished: bool) -> bool:
    """Log what MLflow missed for the run in ``run_dir`` (a no-op unless it is marked pending); with
    ``finished``, also its final artifacts, and end it. True if it synced."""
    if not (cfg.tracking.enabled and is_pending(run_dir)):
        return False
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from raysweep.redact import redact
    from raysweep.tracking import check_reachable, experiment_id, tracking_uri
    from raysweep.train.record import final_artifacts
    from raysweep.train.trunk import write_text_atomic

    uri = tracking_uri(cfg.tracking, cfg.output_dir)
    check_reachable(uri)
    client = MlflowClient(uri)
    rid_file = run_dir / "mlflow_run_id"
    created = False
    if rid_file.is_file():
        run_id = rid_file.read_text().strip()
    else:  # MLflow was down when the run started
        spec = json.loads((run_dir / RUN_SPEC).read_text())
        run = client.create_run(experiment_id(cfg.tracking, cfg.output_dir), run_name=spec["run_name"],
                                tags={k: redact(v) for k, v in spec["tags"].items()})
        run_id = run.info.run_id
        params = [Param(k, redact(v)) for k, v in spec["params"].items()]
        for i in range(0, len(params), 100):
            client.log_batch(run_id, params=params[i:i + 100])
        client.log_text(run_id, redact(cfg.to_yaml()), "config.yaml")
        write_text_atomic(rid_file, run_id)
        created = True
    wanted = journal_values(run_dir)
    have = set()
    for key in {k for k, _ in wanted}:
        have |= {(key, m.step) for m in client.get_metric_history(run_id, key)}
    missing = [Metric(k, v, ts, step) for (k, step), (v, ts) in sorted(wanted.items(), key=lambda kv: kv[0][1])
               if (k, step) not in have]
    for i in range(0, len(missing), 1000):
        client.log_batch(run_id, metrics=missing[i:i + 1000])
    if finished:
        for path in final_artifacts(run_dir, title, train_metric):
            client.log_artifact(run_id, str(path))
        client.set_terminated(run_id)
    os.unlink(run_dir / PENDING)
    print(f"[{title}] MLflow had missed {len(missing)} metric value(s): logged them to run {run_id}"
          + (" (created now)" if created else "") + (", and ended it" if finished else ""), file=sys.stderr)
    return True
