"""MLflow helpers: flat params and the default local store."""

from raysweep.tracking import TrackingConfig, flat_params, tracking_uri


def test_flat_params_are_dotted_strings():
    p = flat_params({"sft": {"learning_rate": 1e-5, "checkpoints": [0, 10], "deepspeed": {"stage": 2}}, "seed": 3})
    assert p == {"sft.learning_rate": "1e-05", "sft.checkpoints": "[0, 10]", "sft.deepspeed.stage": "2", "seed": "3"}


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(TrackingConfig(), tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert tracking_uri(TrackingConfig(uri="http://127.0.0.1:5000"), tmp_path) == "http://127.0.0.1:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5001")
    assert tracking_uri(TrackingConfig(uri="http://127.0.0.1:5000"), tmp_path) == "http://127.0.0.1:5001"


def test_a_finished_run_left_open_by_a_kill_is_closed_with_its_artifacts(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from raysweep.config import load_config
    from raysweep.train import trunk as T
    from raysweep.train.record import close_open_run

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = load_config(None, [f"output_dir={tmp_path}"])
    client = MlflowClient(tracking_uri(cfg.tracking, tmp_path))
    # a run whose process died after its final manifest: RUNNING in the store, its id in the run directory
    run = client.create_run(client.create_experiment("x", artifact_location=(tmp_path / "art").as_uri()))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "mlflow_run_id").write_text(run.info.run_id)
    T.append_result(run_dir, {"kind": "eval", "step": 0, "eval": {"ood": {"accuracy": 0.1, "ci95": [0, 0.3]}}})
    T.append_result(run_dir, {"kind": "train", "step": 1, "reward": 0.5})
    assert client.get_run(run.info.run_id).info.status == "RUNNING"
    assert close_open_run(cfg, run_dir, "rl x", "reward")
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"results.jsonl", "curves.png"}
    assert not close_open_run(cfg, run_dir, "rl x", "reward")  # nothing left to close
    assert not close_open_run(cfg, tmp_path / "untracked", "rl y", "reward")
    # a run directory linked from another output_dir: its run is in another store, there is nothing to close here
    elsewhere = tmp_path / "copied"
    elsewhere.mkdir()
    (elsewhere / "mlflow_run_id").write_text("0" * 32)
    assert not close_open_run(cfg, elsewhere, "sft z", "loss")


def test_an_mlflow_server_that_does_not_answer_fails_fast_naming_the_uri(tmp_path, monkeypatch):
    import socket
    import time

    import pytest

    from raysweep.config import ConfigError, load_config
    from raysweep.train.sft import for_workers

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    cfg = load_config(None, [f"output_dir={tmp_path}"])
    t0 = time.time()
    with pytest.raises(ConfigError, match=rf"MLflow server at http://127.0.0.1:{port} does not answer"):
        for_workers(cfg)  # what every stage and sweep does on the driver before training
    assert time.time() - t0 < 10
    assert for_workers(load_config(None, [f"output_dir={tmp_path}", "tracking.enabled=false"])).output_dir
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert for_workers(cfg).tracking.uri.startswith("sqlite:///")  # local stores are not checked


def test_outbox_journal_keeps_the_last_value_and_skips_a_cut_line(tmp_path):
    from raysweep.train.tracking_outbox import journal, journal_values, mark_pending, is_pending

    journal(tmp_path, {"train/loss": 2.0, "train/lr": 1e-3}, 1)
    journal(tmp_path, {"train/loss": 1.5}, 2)
    journal(tmp_path, {"train/loss": 1.4}, 2)  # a retried step: the last value counts
    with open(tmp_path / "mlflow_metrics.jsonl", "a") as f:
        f.write('\n{"step": 3, "time_ms": 1, "metr')  # a kill mid-record
    journal(tmp_path, {"train/loss": 1.3}, 4)  # the next record is still read
    got = {k: v for k, (v, _) in journal_values(tmp_path).items()}
    assert got == {("train/loss", 1): 2.0, ("train/lr", 1): 1e-3, ("train/loss", 2): 1.4, ("train/loss", 4): 1.3}
    assert not is_pending(tmp_path)
    mark_pending(tmp_path, "ConnectionError: refused")
    assert is_pending(tmp_path)


def test_experiments_are_tagged_to_open_in_the_training_runs_view(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from raysweep.tracking import EXPERIMENT_KIND, experiment_id

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = TrackingConfig(experiment="kinds")
    client = MlflowClient(tracking_uri(cfg, tmp_path))
    exp = experiment_id(cfg, tmp_path)  # a new experiment gets the tag
    assert client.get_experiment(exp).tags[EXPERIMENT_KIND[0]] == "custom_model_development"
    old = client.create_experiment("older", artifact_location=(tmp_path / "a").as_uri())  # made before the tag
    assert experiment_id(TrackingConfig(experiment="older"), tmp_path) == old
    assert client.get_experiment(old).tags[EXPERIMENT_KIND[0]] == "custom_model_development"
