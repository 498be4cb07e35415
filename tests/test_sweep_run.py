"""`raysweep run` end to end on tiny: trunk, a 2 x 2 Tune grid of RL trials, MLflow parent/children, resume."""

import csv
from pathlib import Path

import pytest

from raysweep.config import load_config
from raysweep.train import trunk as T

SWEEP = ["model.name=tiny", "sft.checkpoints=[0, 20]", "sft.learning_rate=3e-3", "sft.per_device_batch_size=16",
         "sft.num_examples=256", "sft.warmup_steps=0", "sft.deepspeed.stage=0", "sft.cpus_per_worker=2",
         "eval.n=16", "task.reward=paper", "rl.grid={learning_rate: [1e-4, 1e-3]}", "rl.max_steps=3",
         "rl.eval_every=0", "rl.batch_size=4", "rl.num_generations=4", "rl.num_prompts=64", "rl.deepspeed.stage=0",
         "rl.cpus_per_worker=2"]


@pytest.mark.integration
def test_sweep_runs_the_grid_and_a_rerun_redoes_nothing(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from raysweep.sweep.run import resume_sweep, run_sweep

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = load_config(None, SWEEP + ["output_dir=out", "sweep.name=quick"])
    sdir = run_sweep(cfg)
    assert sdir == tmp_path / "out" / "sweeps" / "quick"

    rows = list(csv.DictReader(open(sdir / "results.csv")))
    assert [(r["rl.sft_step"], r["rl.learning_rate"]) for r in rows] == [
        ("0", "0.0001"), ("0", "0.001"), ("20", "0.0001"), ("20", "0.001")]
    assert all(r["finished"] == "True" and r["id_n"] == "16" and 0 <= float(r["ood_acc_final"]) <= 1 for r in rows)
    assert {r["start_checkpoint"].rsplit("/", 1)[1] for r in rows} == {"step-0", "step-20"}

    # MLflow: one parent run for the sweep; the trunk and every trial are its children, with the same param names
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    parent = (sdir / "mlflow_run_id").read_text().strip()
    exp = client.get_experiment_by_name("raysweep")
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
    kinds = sorted(r.data.tags["raysweep.kind"] for r in children)
    assert kinds == ["rl"] * 4 + ["sft"]
    trials = [r for r in children if r.data.tags["raysweep.kind"] == "rl"]
    assert sorted(r.data.params["rl.learning_rate"] for r in trials) == ["0.0001", "0.0001", "0.001", "0.001"]
    assert {r.data.tags["raysweep.parent_sft_step"] for r in trials} == {"0", "20"}
    assert "results.csv" in [a.path for a in client.list_artifacts(parent)]

    # resume (as after a dead driver): nothing trained again, no new MLflow runs
    before = {r["rl_run_dir"]: list(T.read_results(Path(r["rl_run_dir"]))) for r in rows}
    assert resume_sweep(sdir) == sdir
    for rdir, records in before.items():
        assert list(T.read_results(Path(rdir))) == records
    assert len(client.search_runs([exp.experiment_id])) == 6
