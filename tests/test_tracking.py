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
