"""No secrets in what raysweep prints or logs: credentials in storage and tracking URIs are masked in the
resolved config it prints, its error messages, and its MLflow params, tags and text artifacts; the real
values still connect (a basic-auth tracking URI passes the reachability check)."""

import http.server
import json
import threading

import pytest

from raysweep.redact import MASK, redact, redact_obj, split_userinfo

S3 = "s3://bucket/sweeps?access_key=AKIAEXAMPLE&secret_key=wJalrSECRET&session_token=TOKEN123&endpoint_override=h:9000"
SECRETS = ("AKIAEXAMPLE", "wJalrSECRET", "TOKEN123", "hunter2")


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


@pytest.mark.parametrize("text,want", [
    (S3, f"s3://bucket/sweeps?access_key={MASK}&secret_key={MASK}&session_token={MASK}&endpoint_override=h:9000"),
    ("http://alice:hunter2@mlflow.example:5000/", f"http://alice:{MASK}@mlflow.example:5000/"),
    ("https://ghp_TOKEN123@github.com/x", f"https://{MASK}@github.com/x"),
    ("http://u:p@ss:w0rd@host/x", f"http://u:{MASK}@host/x"),          # an unencoded @ in the password
    ("gs://b/p?X-Goog-Signature=abc&X-Goog-Credential=def",
     f"gs://b/p?X-Goog-Signature={MASK}&X-Goog-Credential={MASK}"),
    ("abfs://c@acct.dfs.core.windows.net/p?sv=1&sig=xyz", f"abfs://c@acct.dfs.core.windows.net/p?sv=1&sig={MASK}"),
    ("s3://AKIAEXAMPLE:wJalrSECRET@bucket/p", f"s3://{MASK}:{MASK}@bucket/p"),  # pyarrow's key:secret@ form
    ("storage: s3://b/p?secret_key=wJalrSECRET\nname: q", f"storage: s3://b/p?secret_key={MASK}\nname: q"),
    ("s3://bucket/sweeps/q?endpoint_override=127.0.0.1:9000&scheme=http", None),  # nothing secret: unchanged
    ("/mnt/shared/sweeps", None), ("sqlite:////tmp/out/mlflow.db", None), ("lr=1e-5 key-value", None),
    ("s3://b/p?secret_key=", None),
])
def test_redact_masks_credentials_and_nothing_else(text, want):
    assert redact(text) == (text if want is None else want)
    assert redact(redact(text)) == redact(text)  # idempotent


def test_redact_obj_and_split_userinfo():
    cfg = {"sweep": {"storage": S3}, "tracking": {"uri": "http://alice:hunter2@h:5000"}, "n": 3, "l": [S3]}
    assert not leaks(json.dumps(redact_obj(cfg))) and redact_obj(cfg)["n"] == 3
    assert split_userinfo("http://alice:hunter2@h:5000/x") == ("http://h:5000/x", "alice", "hunter2")
    assert split_userinfo("http://tok@h") == ("http://h", "tok", None)
    assert split_userinfo("http://h:5000") == ("http://h:5000", None, None)


def test_flat_params_never_carry_credentials():
    from raysweep.tracking import flat_params

    p = flat_params({"sweep": {"storage": S3}, "tracking": {"uri": "http://alice:hunter2@h:5000"}})
    assert not leaks(json.dumps(p)) and p["sweep.storage"].startswith("s3://bucket/sweeps?access_key=***")


def test_printed_config_and_errors_are_redacted(tmp_path, capsys, monkeypatch):
    import raysweep.train.sft
    from raysweep.cli import main

    def tripwire(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(raysweep.train.sft, "run_sft", tripwire)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    overrides = [f"sweep.storage={S3}", "tracking.uri=http://alice:hunter2@127.0.0.1:9", f"output_dir={tmp_path}"]
    assert main(["config", *overrides]) == 0
    out = capsys.readouterr().out
    assert "access_key=***" in out and "alice:***@" in out and not leaks(out)
    # an error that quotes the URI (a dead tracking server, checked before anything trains) is redacted too
    assert main(["run", *overrides, "model.name=tiny"]) == 2
    err = capsys.readouterr().err
    assert "raysweep: error: tracking: the MLflow server at http://alice:***@127.0.0.1:9" in err and not leaks(err)


def test_storage_errors_are_redacted(tmp_path):
    from raysweep.config import ConfigError
    from raysweep.sweep.storage import SweepStorage, read_remote_text

    store = SweepStorage.for_sweep("nosuchfs://bucket/x?secret_key=wJalrSECRET", tmp_path, "q")
    with pytest.raises(ConfigError) as exc:
        store.check()
    assert "sweep.storage" in str(exc.value) and "secret_key=***" in str(exc.value) and not leaks(str(exc.value))
    with pytest.raises(ConfigError) as exc:
        read_remote_text("nosuchfs://bucket/x/config.yaml?secret_key=wJalrSECRET")
    assert not leaks(str(exc.value))


class _Health(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


def test_a_tracking_uri_with_credentials_still_connects():
    """The real value stays where it connects: urllib alone reads ``alice:hunter2@127.0.0.1`` as a host."""
    from raysweep.tracking import check_reachable

    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        check_reachable(f"http://alice:hunter2@127.0.0.1:{server.server_port}", timeout_s=5)
    finally:
        server.shutdown()
    assert _Health.seen == [("/health", "Basic YWxpY2U6aHVudGVyMg==")]  # base64("alice:hunter2")


def test_mlflow_params_tags_and_config_artifact_are_redacted(tmp_path, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    from raysweep.config import load_config
    from raysweep.sweep.run import _parent_run
    from raysweep.tracking import start_run, tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = load_config(None, [f"output_dir={tmp_path}", f"sweep.storage={S3}", "sweep.name=q"])
    sdir = tmp_path / "sweep"
    sdir.mkdir()
    run_id = _parent_run(cfg, sdir)  # what `raysweep run` logs: the resolved config as params and config.yaml
    client = MlflowClient(tracking_uri(cfg.tracking, cfg.output_dir))
    run = client.get_run(run_id)
    assert run.data.params["sweep.storage"].startswith("s3://bucket/sweeps?access_key=***")
    text = open(client.download_artifacts(run_id, "config.yaml", str(tmp_path))).read()
    assert "secret_key=***" in text and not leaks(text)
    assert not leaks(json.dumps(run.data.params)) and not leaks(json.dumps(run.data.tags))
    # any caller of start_run: params, tags and artifact texts
    start_run(cfg.tracking, cfg.output_dir, tmp_path / "other_run_id", "x",
              {"tracking.uri": "http://alice:hunter2@h:5000"}, {"where": S3}, {"notes.txt": f"storage {S3}"})
    mlflow.end_run()
    other = client.get_run((tmp_path / "other_run_id").read_text())
    assert not leaks(json.dumps(other.data.params)) and not leaks(json.dumps(other.data.tags))
    notes = open(client.download_artifacts(other.info.run_id, "notes.txt", str(tmp_path))).read()
    assert notes.startswith("storage s3://bucket/sweeps?access_key=***") and not leaks(notes)
    assert "secret_key=wJalrSECRET" in cfg.sweep.storage  # the config itself keeps the real value
