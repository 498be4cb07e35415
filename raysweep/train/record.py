"""What a training stage records, shared by SFT and RL workers: its results file, its MLflow run,
evaluation metrics, and progress lines with an ETA.

Every rank holds a :class:`StageRecorder`; only rank 0 writes (the results file, MLflow, stderr).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from raysweep.train import trunk as T
from raysweep.train.distributed import Place


def fmt_s(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"


def eval_summary(results: dict) -> dict:
    """``{rule: RuleResult}`` -> ``{rule: summary dict}``: what results files and manifests keep."""
    return {rule: r.summary() for rule, r in results.items()}


def eval_metrics(summary: dict[str, dict]) -> tuple[dict[str, float], str]:
    """MLflow metrics (``eval/<rule>/...``) and a one-line digest of an :func:`eval_summary`."""
    metrics: dict[str, float] = {}
    line = []
    for rule, r in summary.items():
        lo, hi = r["ci95"]
        metrics.update({f"eval/{rule}/accuracy": r["accuracy"], f"eval/{rule}/ci_low": lo, f"eval/{rule}/ci_high": hi,
                        **{f"eval/{rule}/{v}": c / max(1, r.get("answers", r["n"])) for v, c in r.get("verdicts", {}).items()}})
        text = f"{rule} {r['accuracy']:.3f} [{lo:.3f},{hi:.3f}] n={r['n']}"
        for a in r.get("accuracy_at_attempt") or ():  # within k attempts (task.attempts > 1)
            metrics[f"eval/{rule}/accuracy_at_{a['attempt']}"] = a["accuracy"]
        if r.get("accuracy_at_attempt"):
            text += f" (attempt 1: {r['accuracy_at_attempt'][0]['accuracy']:.3f})"
        if r.get("loss") is not None:
            metrics[f"eval/{rule}/loss"] = r["loss"]
            text += f" loss {r['loss']:.3f}"
        line.append(text)
    return metrics, " | ".join(line)


class StepClock:
    """Seconds per optimizer step, excluding pauses (checkpointing, evaluation), and the ETA."""

    def __init__(self):
        self.t_start, self.s_start, self.paused = time.time(), 0, 0.0

    def start(self, step: int) -> None:
        self.t_start, self.s_start, self.paused = time.time(), step, 0.0

    def pause(self, seconds: float) -> None:
        self.paused += seconds

    def rate(self, step: int) -> float:
        return (time.time() - self.t_start - self.paused) / max(1, step - self.s_start)

    def eta(self, step: int, total: int) -> str:
        return fmt_s(self.rate(step) * max(0, total - step))


class StageRecorder:
    """Results file, MLflow run and progress output for one stage run (a trunk, an RL job)."""

    def __init__(self, cfg, place: Place, run_dir: Path, tag: str):
        self.cfg, self.place, self.run_dir, self.tag = cfg, place, run_dir, tag
        self.mlflow = None
        self.tracking = False  # this run is meant to be tracked (start_tracking ran on rank 0)

    @property
    def main(self) -> bool:
        return self.place.main

    def log(self, msg: str) -> None:
        if self.place.main:
            print(f"{self.tag} {msg}", file=sys.stderr, flush=True)

    def append(self, record: dict) -> None:
        if self.place.main:
            T.append_result(self.run_dir, record)

    def start_tracking(self, run_name: str, tags: dict[str, str], params: dict[str, str],
                       parent_run_id: str | None = None) -> str | None:
        """Start (or resume, via ``<run_dir>/mlflow_run_id``) this run's MLflow run on rank 0; its id."""
        if not (self.place.main and self.cfg.tracking.enabled):
            return None
        import mlflow

        from raysweep.tracking import start_run

        from raysweep.train.tracking_outbox import RUN_SPEC

        if parent_run_id:
            tags = {**tags, "mlflow.parentRunId": parent_run_id}
        T.write_json_atomic(self.run_dir / RUN_SPEC, {"run_name": run_name, "tags": tags, "params": params})
        self.tracking = True
        try:
            run = start_run(self.cfg.tracking, self.cfg.output_dir, self.run_dir / "mlflow_run_id", run_name,
                            params, tags, {"config.yaml": self.cfg.to_yaml()})
        except Exception as exc:  # noqa: BLE001 - MLflow down: train on, log later (tracking_outbox)
            self._tracking_down(exc)
            return None
        self.mlflow = mlflow
        return run.info.run_id

    def log_metrics(self, metrics: dict, step: int) -> None:
        if not (self.place.main and self.tracking):
            return
        from raysweep.train.tracking_outbox import journal

        clean = {k: float(v) for k, v in metrics.items() if v is not None}
        journal(self.run_dir, clean, step)  # first on disk: what MLflow misses is logged later
        if self.mlflow is not None:
            try:
                self.mlflow.log_metrics(clean, step=step)
            except Exception as exc:  # noqa: BLE001
                self._tracking_down(exc)
        else:
            self._still_offline()

    def _still_offline(self) -> None:
        """Offline since MLflow failed: keep the pending mark (a `raysweep sync` meanwhile may have cleared
        it), so that what this run logs from now on is synced too."""
        from raysweep.train.tracking_outbox import is_pending, mark_pending

        if not is_pending(self.run_dir):
            mark_pending(self.run_dir, "MLflow was unreachable earlier in this run; it continued offline")

    def finish_tracking(self, train_metric: str) -> None:
        """Plot the run's curves, log the artifacts and end the MLflow run (rank 0)."""
        if self.place.main and self.tracking and self.mlflow is None:
            self._still_offline()  # the sync logs the final artifacts and ends the run
        if self.mlflow is not None:
            try:
                for path in final_artifacts(self.run_dir, self.tag.strip("[]"), train_metric):
                    self.mlflow.log_artifact(str(path))
                self.mlflow.end_run()
            except Exception as exc:  # noqa: BLE001
                self._tracking_down(exc)
            self.mlflow = None

    def _tracking_down(self, exc: Exception) -> None:
        """MLflow stopped answering: note it beside the run, say so once, and carry on without it."""
        from raysweep.redact import redact
        from raysweep.train.tracking_outbox import is_pending, mark_pending

        first = not is_pending(self.run_dir)
        mark_pending(self.run_dir, redact(f"{exc.__class__.__name__}: {exc}"))
        self.mlflow = None
        if first:
            self.log(f"MLflow is unreachable ({exc.__class__.__name__}); training goes on, every result stays in "
                     f"{self.run_dir}; the sweep's end (`raysweep resume`) or `raysweep sync` logs what MLflow missed")

    def record_eval(self, step: int, summary: dict, seconds: float, kind: str = "eval", **extra) -> None:
        """Rank 0: the evaluation (an :func:`eval_summary`) at ``step`` to MLflow, the results file (a
        ``kind`` record) and stderr."""
        if not self.place.main:
            return
        metrics, line = eval_metrics(summary)
        self.log_metrics(metrics, step)
        self.append({"kind": kind, "step": step, **extra, "eval": summary, "eval_seconds": seconds})
        self.log(f"{kind} step {step}: {line} ({seconds:.0f}s)")


def final_artifacts(run_dir: Path, title: str, train_metric: str) -> list[Path]:
    """What a finished run logs to MLflow: ``results.jsonl`` and ``curves.png`` (drawn here: accuracy per
    evaluation with 95% bands, ``train_metric`` per step)."""
    from raysweep.plots import plot_run

    plot_run(list(T.read_results(run_dir)), run_dir / "curves.png", title, train_metric)
    return [p for p in (run_dir / "results.jsonl", run_dir / "curves.png") if p.is_file()]


def close_open_run(cfg, run_dir: Path, title: str, train_metric: str) -> bool:
    """A run finished on disk whose MLflow run is still open (its process died after the final manifest
    and before ending the run): log its final artifacts and end it. True if it did."""
    from raysweep.train.tracking_outbox import sync_run

    if sync_run(cfg, run_dir, title, train_metric, finished=True):  # MLflow was down during the run
        return True
    f = run_dir / "mlflow_run_id"
    if not (cfg.tracking.enabled and f.is_file()):
        return False
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from raysweep.tracking import tracking_uri

    client = MlflowClient(tracking_uri(cfg.tracking, cfg.output_dir))
    run_id = f.read_text().strip()
    try:
        status = client.get_run(run_id).info.status
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        # the run was tracked in another store (the run directory was copied or linked from another output_dir,
        # or tracking.uri changed): nothing here to close
        print(f"[{title}] finished; its MLflow run {run_id} is not in this tracking store "
              f"({tracking_uri(cfg.tracking, cfg.output_dir)}): left as it is", file=sys.stderr)
        return False
    if status != "RUNNING":
        return False
    for path in final_artifacts(run_dir, title, train_metric):
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id)
    print(f"[{title}] finished, but its MLflow run {run_id} was left open: closed it", file=sys.stderr)
    return True


def eval_key(cfg) -> str:
    """What an evaluation's numbers depend on besides the weights (task and eval settings): equal keys,
    comparable (and reusable) numbers."""
    task = cfg.task.identity(exclude={"reward"})  # the reward scheme changes no accuracy
    return T.digest({"task": task, "eval": cfg.eval.model_dump(mode="json")}, 16)


def config_params(cfg, drop: tuple[str, ...] = ()) -> dict[str, str]:
    """The resolved config as flat MLflow params."""
    from raysweep.tracking import flat_params

    params = flat_params(json.loads(cfg.model_dump_json()))
    for key in drop:
        params.pop(key, None)
    return params
