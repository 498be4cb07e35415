"""`raysweep run` end to end on tiny, against a real `mlflow server` (sqlite backend, loopback) and a local
S3 server (moto) as the sweep's storage: a trunk, a 2 x 2 Tune grid of RL trials; the driver is killed
mid-sweep, its machine's working copy of the sweep is deleted, and `raysweep resume s3://...` finishes the
sweep without redoing a finished trial or duplicating an MLflow run."""

import csv
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pyarrow.fs
import pytest
import yaml
from helpers import free_port, kill_tree, wait_for

from raysweep.train import trunk as T

SWEEP = ["model.name=tiny", "sft.checkpoints=[0, 20]", "sft.learning_rate=3e-3", "sft.per_device_batch_size=16",
         "sft.num_examples=256", "sft.warmup_steps=0", "sft.deepspeed.stage=0", "sft.cpus_per_worker=2",
         "eval.n=16", "task.reward=paper", "rl.grid={learning_rate: [1e-4, 1e-3]}", "rl.max_steps=3",
         "rl.eval_every=0", "rl.batch_size=4", "rl.num_generations=4", "rl.num_prompts=64", "rl.deepspeed.stage=0",
         "rl.cpus_per_worker=2", "output_dir=out", "sweep.name=quick", "tracking.experiment=sweep-test",
         "spectral.in_sweep=true", "rl.save_every=1"]
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _raysweep(*args) -> list[str]:
    return [sys.executable, "-m", "raysweep.cli", *args]


def _healthy(url: str, path: str = "/health") -> bool:
    try:
        with urllib.request.urlopen(url + path, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _is_train_worker(p) -> bool:
    try:
        return "RayTrainWorker" in " ".join(p.cmdline() or [p.name()])
    except psutil.Error:
        return False


class MlflowServer:
    """A real tracking server on loopback (sqlite backend, served artifacts), stopped by pid; it can be
    stopped and started again on the same port and store (a server that went down and came back)."""

    def __init__(self, tmp_path: Path):
        self.tmp_path, self.port, self.proc, self.starts = tmp_path, free_port(), None, 0
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        log = self.tmp_path / f"mlflow-server-{self.starts}.log"
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--backend-store-uri", f"sqlite:///{self.tmp_path / 'server.db'}",
             "--artifacts-destination", str(self.tmp_path / "server-artifacts")],
            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: _healthy(self.url), 120, "mlflow server up", self.proc, log)

    def stop(self) -> None:
        if self.proc is not None:
            kill_tree(self.proc, graceful=True)
            self.proc = None


@pytest.fixture
def mlflow_server(tmp_path):
    server = MlflowServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_server(tmp_path):
    """A local S3 API (moto's server) on loopback; the base URI of a bucket it will create. Stopped by pid."""
    port = free_port()
    log = tmp_path / "s3-server.log"
    proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: _healthy(f"http://127.0.0.1:{port}/moto-api", "/"), 60, "S3 server up", proc, log)
        yield f"s3://sweeps-bucket/raysweep?endpoint_override=127.0.0.1:{port}&scheme=http&allow_bucket_creation=true"
    finally:
        kill_tree(proc, graceful=True)


@pytest.mark.integration
def test_sweep_killed_mid_grid_resumes_with_nothing_redone(tmp_path, mlflow_server, s3_server):
    from mlflow.tracking import MlflowClient

    from raysweep.sweep.storage import child_uri, read_remote_text

    env = {**os.environ, **S3_ENV, "MLFLOW_TRACKING_URI": mlflow_server.url, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    os.environ.update(S3_ENV)  # for this process's reads of the bucket
    sdir = tmp_path / "out" / "sweeps" / "quick"
    remote = child_uri(s3_server, "quick")
    log = tmp_path / "driver.log"
    driver = subprocess.Popen(_raysweep("run", *SWEEP, f"sweep.storage={s3_server}"), cwd=tmp_path, env=env,
                              stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        cells = wait_for(lambda: (sdir / "cells.json").is_file() and json.loads((sdir / "cells.json").read_text()),
                         600, "the sweep's cells planned", driver, log)
        rdirs = {name: Path(job).parent for name, job in cells.items()}

        def some_finished():
            return [n for n, d in rdirs.items() if (d / "final" / "manifest.json").is_file()]

        # a training worker dies mid-trial (after the trainer saved step 1): Tune retries the trial, which
        # resumes from that state
        def saved_and_running():
            return next((n for n, d in rdirs.items() if (d / "trainer" / "checkpoint-1" / "trainer_state.json").is_file()
                         and not (d / "final").exists()), None)

        victim = wait_for(saved_and_running, 600, "a trial's first saved state", driver, log)
        workers = [p for p in psutil.Process(driver.pid).children(recursive=True) if _is_train_worker(p)]
        assert workers, "no Ray Train worker process found"  # 2 CPUs: one trial, one worker at a time
        for w in workers:
            w.kill()
        # and the MLflow server goes down too: the retried trial trains on without it
        mlflow_server.stop()
        wait_for(some_finished, 600, "a first trial finished", driver, log)
    finally:
        kill_tree(driver)  # the driver, its local Ray instance, the trials and their training workers
    done_before = some_finished()
    assert len(done_before) < len(rdirs) - 1, "killed too late to test resume"
    assert "[sweep]" in log.read_text() and "running" in log.read_text()  # the live view was printing
    records_before = {n: list(T.read_results(rdirs[n])) for n in done_before}
    assert (rdirs[victim] / "mlflow_pending").is_file()  # it noted what MLflow missed
    assert "MLflow is unreachable" in log.read_text()
    mlflow_server.start()  # the server is back (same store) before the sweep is resumed
    client = MlflowClient(tracking_uri=mlflow_server.url)
    exp = client.get_experiment_by_name("sweep-test")
    runs_before = {r.info.run_id: r.info.status for r in client.search_runs([exp.experiment_id])}

    # the sweep's record is in the bucket: Tune's experiment state and the sweep's own files
    saved = yaml.safe_load(read_remote_text(child_uri(s3_server, "quick/config.yaml")))
    assert saved["sweep"]["name"] == "quick" and saved["sweep"]["storage"] == s3_server
    fs, path = pyarrow.fs.FileSystem.from_uri(child_uri(s3_server, "quick/trials"))
    assert "tuner.pkl" in {f.base_name for f in fs.get_file_info(pyarrow.fs.FileSelector(path))}
    parent = read_remote_text(child_uri(s3_server, "quick/mlflow_run_id"))
    # a new driver machine: no local copy of the sweep; trunks and RL runs are on the shared output_dir
    shutil.rmtree(sdir)
    resume = subprocess.run(_raysweep("resume", remote), cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=900)
    assert resume.returncode == 0, resume.stdout[-3000:] + resume.stderr[-5000:]
    assert "continuing the Tune experiment in s3://sweeps-bucket/raysweep/quick" in resume.stderr
    assert "pulled config.yaml, cells.json, mlflow_run_id" in resume.stderr

    # the killed worker's trial was retried from its saved state, not from the start
    resumes = [r for r in T.read_results(rdirs[victim]) if r["kind"] == "resume"]
    assert resumes and resumes[0]["from_step"] >= 1, list(T.read_results(rdirs[victim]))
    assert (rdirs[victim] / "final" / "manifest.json").is_file()
    # what MLflow missed while it was down was logged at the sweep's end: every step, the run ended
    victim_run = (rdirs[victim] / "mlflow_run_id").read_text().strip()
    assert not (rdirs[victim] / "mlflow_pending").exists()
    assert sorted(m.step for m in client.get_metric_history(victim_run, "train/reward")) == [1, 2, 3]
    assert sorted(m.step for m in client.get_metric_history(victim_run, "eval/ood/accuracy")) == [0, 3]
    assert "curves.png" in {a.path for a in client.list_artifacts(victim_run)}

    # nothing finished was redone; every cell finished
    for n in done_before:
        assert list(T.read_results(rdirs[n])) == records_before[n], f"{n} was trained again"
    rows = list(csv.DictReader(open(sdir / "results.csv")))
    assert [(r["rl.sft_step"], r["rl.learning_rate"]) for r in rows] == [
        ("0", "0.0001"), ("0", "0.001"), ("20", "0.0001"), ("20", "0.001")]
    assert all(r["finished"] == "True" and r["id_n"] == "16" and 0 <= float(r["ood_acc_final"]) <= 1 for r in rows)
    assert {r["start_checkpoint"].rsplit("/", 1)[1] for r in rows} == {"step-0", "step-20"}

    # MLflow, read back from the server: one parent; the trunk and every trial are its children, with the same
    # param names; the runs that existed before the kill were continued, not duplicated
    assert (sdir / "mlflow_run_id").read_text().strip() == parent
    assert read_remote_text(child_uri(s3_server, "quick/results.csv")).splitlines() == \
        (sdir / "results.csv").read_text().splitlines()
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 + 1 + 4 + 1 and set(runs_before) <= {r.info.run_id for r in runs}
    assert all(r.info.status == "FINISHED" for r in runs), [(r.info.run_name, r.info.status) for r in runs]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent]
    assert sorted(r.data.tags["raysweep.kind"] for r in children) == ["rl"] * 4 + ["sft", "spectral"]
    trials = [r for r in children if r.data.tags["raysweep.kind"] == "rl"]
    assert sorted(r.data.params["rl.learning_rate"] for r in trials) == ["0.0001", "0.0001", "0.001", "0.001"]
    assert {r.data.tags["raysweep.parent_sft_step"] for r in trials} == {"0", "20"}
    assert sorted(r["mlflow_run_id"] for r in rows) == sorted(r.info.run_id for r in trials)
    # readable in the UI: the training-runs view, trial names with their settings, a parent spanning the sweep,
    # the report's summary on the parent and each cell's paired gain on its trial
    assert client.get_experiment(exp.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    assert sorted(r.info.run_name for r in trials) == [f"rl/grpo/seed=0/sft={s}/learning_rate={lr}"
                                                       for s in (0, 20) for lr in ("0.0001", "0.001")]
    top = client.get_run(parent)
    assert top.info.end_time >= max(r.info.end_time for r in children)
    assert top.info.start_time <= min(r.info.start_time for r in children)
    for lr in ("0.0001", "0.001"):
        assert {f"boundary/ood/learning_rate:{lr}/{k}" for k in ("window_from", "best_recovery", "best_recovery_low")} \
            <= set(top.data.metrics)
    for r in trials:
        m = client.get_run(r.info.run_id).data.metrics
        assert m["recovery/ood/low"] <= m["recovery/ood"] <= m["recovery/ood/high"] and m["recovery/ood/n"] == 16
    assert {"results.csv", "accuracy_vs_sft.png", "config.yaml"} <= {a.path for a in client.list_artifacts(parent)}
    # the recovery report, written at the end of the sweep
    assert {"report/report.md", "report/boundary.csv", "report/recovery_ood.png"} <= {
        a.path for a in client.list_artifacts(parent, "report")}
    assert "ood, learning_rate=0.0001:" in (sdir / "report" / "report.md").read_text()
    first = next(r["mlflow_run_id"] for r in rows if r["cell"] == done_before[0])
    assert {"curves.png", "results.jsonl"} <= {a.path for a in client.list_artifacts(first)}
    # step-wise metrics: the trial's training reward at every step
    assert [m.step for m in client.get_metric_history(first, "train/reward")] == [1, 2, 3]

    # the spectral analysis (spectral.in_sweep), as Ray tasks: base vs SFT 20, and per cell SFT start vs RL and
    # base vs RL, in a child run of the sweep
    spectral = next(r for r in children if r.data.tags["raysweep.kind"] == "spectral")
    assert {"spectral/layers_trunk.png", "spectral/layers_rl.png", "spectral/trunk_seed0.png", "spectral/spectral.md",
            "spectral/matrices.csv"} <= {a.path for a in client.list_artifacts(spectral.info.run_id, "spectral")}
    summary = json.loads((sdir / "spectral" / "spectral.json").read_text())
    assert sorted(p["kind"] for p in summary["pairs"]) == ["rl"] * 4 + ["rl-base"] * 4 + ["trunk"]
    trunk = next(p for p in summary["pairs"] if p["kind"] == "trunk")
    assert trunk["sft_step"] == 20 and 0 < trunk["angle_mean.top0.1"] < 90 and trunk["w_rel_change"] > 0
    assert [m.step for m in client.get_metric_history(spectral.info.run_id, "trunk.seed0.angle_mean.top0.1")] == [20]
    assert "[spectral] 7 pair(s) to compare (0 cached)" in resume.stdout  # SFT 0 is the base: 2 pairs twice

    # the boundary search on the same sweep pays for nothing twice: every point is found finished on disk
    search = subprocess.run(_raysweep("boundary", *SWEEP, f"sweep.storage={s3_server}"), cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=900)
    assert search.returncode == 0, search.stdout[-3000:] + search.stderr[-5000:]
    assert "4 already observed (4 found finished on disk)" in search.stderr
    assert "[boundary] 0 new trial(s); the search is complete" in search.stderr
    for rdir, records in ((rdirs[n], records_before[n]) for n in done_before):
        assert list(T.read_results(rdir)) == records
    assert "[spectral] all 9 pair(s) cached" in search.stdout  # the spectral analysis too
    assert len(client.search_runs([exp.experiment_id])) == 7  # no new MLflow runs either

    # one trunk alone, in this process (no Ray): base vs SFT 20, correlated with the trunk's curve
    tdir = Path(rows[0]["start_checkpoint"]).parent.parent
    one = subprocess.run(_raysweep("spectral", "--trunk", str(tdir), "--no-mlflow", "spectral.executor=local"),
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    assert "| seed0/base → seed0/sft20 | trunk |" in one.stdout and "## Along the trunk" in one.stdout
    # every assertion above held: the drill's counts, for the record (`pytest -s`)
    print(f"[drill] cells {len(rdirs)}; finished before the driver was killed: {len(done_before)} {done_before}; "
          f"worker killed in {victim} (resumed from step {resumes[0]['from_step']}); trials redone 0; cells lost 0")
