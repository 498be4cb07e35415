"""Sweep storage: a directory, or a URI (here pyarrow's file:// scheme; S3 is exercised against a local S3
server in test_sweep_run.py) that the sweep's files are mirrored to and pulled back from."""

import pytest

from raysweep.config import ConfigError
from raysweep.sweep.storage import MIRRORED, SweepStorage, child_uri, is_uri, read_remote_text, split_uri


def test_uris_are_told_from_paths_and_keep_their_options():
    assert is_uri("s3://bucket/sweeps") and is_uri("gs://b") and is_uri("file:///tmp/x")
    assert not is_uri("/mnt/shared/sweeps") and not is_uri("outputs/sweeps") and not is_uri("C:/x")
    uri = "s3://b/sweeps/?endpoint_override=127.0.0.1:9000&scheme=http"
    assert split_uri(uri) == ("s3://b/sweeps", "?endpoint_override=127.0.0.1:9000&scheme=http")
    assert child_uri(uri, "quick") == "s3://b/sweeps/quick?endpoint_override=127.0.0.1:9000&scheme=http"


def test_local_storage_is_the_directory_itself(tmp_path):
    default = SweepStorage.for_sweep(None, tmp_path / "out", "q")
    assert default == SweepStorage(tmp_path / "out" / "sweeps" / "q")
    shared = SweepStorage.for_sweep(str(tmp_path / "shared"), tmp_path / "out", "q")
    assert shared.local == tmp_path / "shared" / "q" and shared.remote is None
    assert shared.tune_storage() == (str(tmp_path / "shared" / "q"), None)
    assert shared.push() == [] and shared.pull() == []


def test_uri_storage_mirrors_the_sweep_files_and_a_fresh_machine_pulls_them(tmp_path):
    store = SweepStorage.for_sweep((tmp_path / "bucket").as_uri(), tmp_path / "out", "q")
    assert store.local == tmp_path / "out" / "sweeps" / "q" and store.remote == (tmp_path / "bucket" / "q").as_uri()
    store.local.mkdir(parents=True)
    (store.local / "config.yaml").write_text("sweep: {name: q}\n")
    (store.local / "mlflow_run_id").write_text("abc")
    (store.local / "scratch.txt").write_text("not mirrored")
    (store.local / "boundary").mkdir()
    (store.local / "boundary" / "optuna.db").write_bytes(b"study")
    assert store.push() == ["config.yaml", "mlflow_run_id", "boundary/optuna.db"]
    assert sorted(p.name for p in (tmp_path / "bucket" / "q").iterdir()) == ["boundary", "config.yaml", "mlflow_run_id"]
    path, fs = store.tune_storage()
    assert path == str(tmp_path / "bucket" / "q") and fs is not None
    assert read_remote_text(child_uri(store.remote, "config.yaml")) == "sweep: {name: q}\n"
    assert read_remote_text(child_uri(store.remote, "results.csv")) is None

    other = SweepStorage.for_sweep((tmp_path / "bucket").as_uri(), tmp_path / "elsewhere", "q")
    (other.local).mkdir(parents=True)
    (other.local / "config.yaml").write_text("newer")
    assert other.pull() == ["mlflow_run_id", "boundary/optuna.db"]  # what the local copy has is kept
    assert (other.local / "boundary" / "optuna.db").read_bytes() == b"study"
    assert (other.local / "mlflow_run_id").read_text() == "abc" and (other.local / "config.yaml").read_text() == "newer"
    assert set(MIRRORED) >= {"config.yaml", "results.csv", "mlflow_run_id"}


def test_a_uri_pyarrow_cannot_open_names_the_field(tmp_path):
    store = SweepStorage.for_sweep("nosuchfs://bucket/x", tmp_path, "q")
    with pytest.raises(ConfigError, match=r"sweep.storage: pyarrow cannot open nosuchfs://bucket/x/q"):
        store.pull()
