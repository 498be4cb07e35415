"""MLflow: where runs go, flat params, and runs that resume instead of duplicating.

Default tracking is a local sqlite store, ``sqlite:///<abs output_dir>/mlflow.db``, with artifacts in
``<output_dir>/mlartifacts``; ``MLFLOW_TRACKING_URI`` (e.g. a real ``mlflow server``) or
``tracking.uri`` override it. Credentials in a URI (``http://user:password@host``, secret query
parameters) never reach MLflow's params, tags or text artifacts, nor stdout: see :mod:`raysweep.redact`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from raysweep.redact import redact, split_userinfo


class TrackingConfig(BaseModel):
    """Where MLflow records go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    experiment: str = Field("raysweep", description="MLflow experiment name.")
    uri: str | None = Field(None, description="Tracking URI; default: $MLFLOW_TRACKING_URI, else sqlite in output_dir.")
    enabled: bool = Field(True, description="Log to MLflow at all (the local results files are always written).")


_USER_URI = os.environ.get("MLFLOW_TRACKING_URI")
# MLflow retries a dead server with exponential backoff for minutes per call; raysweep's stages carry on
# without it (see raysweep.train.tracking_outbox), so a few seconds of retrying is enough. The user's own
# settings win.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
_OURS: set[str] = set()
"""URIs raysweep handed to ``mlflow.set_tracking_uri``, which also exports them as MLFLOW_TRACKING_URI: in
a process that tracks for two output directories, the first must not pass for the user's choice."""


def tracking_uri(cfg: TrackingConfig, output_dir: str | Path) -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env and (env not in _OURS or env == _USER_URI):
        return env
    if cfg.uri:
        return cfg.uri
    return f"sqlite:///{(Path(output_dir).resolve() / 'mlflow.db').as_posix()}"


_ANSWERED: set[str] = set()


def use_uri(uri: str) -> None:
    """``mlflow.set_tracking_uri``, remembering that raysweep (not the user) exported it."""
    import mlflow

    if redact(uri) != uri:  # MLflow prints "View run at <uri>/#/..." for servers, credentials included
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    mlflow.set_tracking_uri(uri)
    _OURS.add(uri)


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, before any training, when the tracking URI is an MLflow server that does not answer
    (MLflow itself would retry with backoff for minutes). Local stores (sqlite, files) need no check."""
    if not uri.startswith(("http://", "https://")) or uri in _ANSWERED:
        return
    import base64
    import urllib.error
    import urllib.request

    from raysweep.config import ConfigError

    bare, user, password = split_userinfo(uri)  # urllib reads "user:password@host" as a host name
    request = urllib.request.Request(bare.rstrip("/") + "/health")
    if user is not None:
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as r:
            if r.status == 200:
                _ANSWERED.add(uri)  # once per process: the driver plans many jobs against one server
                return
            problem = f"HTTP {r.status} from /health"
    except urllib.error.HTTPError as exc:
        problem = f"HTTP {exc.code} from /health"
    except (urllib.error.URLError, OSError) as exc:
        problem = str(getattr(exc, "reason", exc))
    raise ConfigError(f"tracking: the MLflow server at {redact(uri)} does not answer ({redact(problem)}); start it, "
                      "or unset MLFLOW_TRACKING_URI / tracking.uri to use the local sqlite store, or set "
                      "tracking.enabled=false")


def flat_params(obj: Any, prefix: str = "") -> dict[str, str]:
    """``{"sft": {"learning_rate": 1e-5}}`` -> ``{"sft.learning_rate": "1e-05"}`` (lists as JSON; credentials in
    values redacted: these are MLflow params)."""
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flat_params(v, f"{prefix}{k}."))
        return out
    key = prefix.rstrip(".")
    out[key] = redact(json.dumps(obj) if isinstance(obj, (list, tuple)) else str(obj))[:6000]
    return out


def experiment_id(cfg: TrackingConfig, output_dir: str | Path) -> str:
    """The id of ``cfg.experiment`` (created if new; with the sqlite default, artifacts beside the store)."""
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(cfg, output_dir)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(cfg.experiment)
    if exp is not None:
        if exp.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
            client.set_experiment_tag(exp.experiment_id, *EXPERIMENT_KIND)
        return exp.experiment_id
    art = (Path(output_dir).resolve() / "mlartifacts").as_uri() if uri.startswith("sqlite:") else None
    return client.create_experiment(cfg.experiment, artifact_location=art, tags=dict([EXPERIMENT_KIND]))


EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
"""MLflow 3's UI opens an experiment of this kind in its training-runs view (not the GenAI traces view)."""


def start_run(cfg: TrackingConfig, output_dir: str | Path, run_id_file: Path, run_name: str,
              params: dict[str, str], tags: dict[str, str], artifacts: dict[str, str] | None = None):
    """Start the run recorded in ``run_id_file`` again, or a new one (and record its id). Returns the run.
    Params, tags and artifact texts are logged redacted (no credentials of any URI in them)."""
    import mlflow

    use_uri(tracking_uri(cfg, output_dir))
    exp_id = experiment_id(cfg, output_dir)
    if run_id_file.is_file():
        run = mlflow.start_run(run_id=run_id_file.read_text().strip())
        return run
    run = mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags={k: redact(v) for k, v in tags.items()})
    from raysweep.train.trunk import write_text_atomic

    write_text_atomic(run_id_file, run.info.run_id)
    mlflow.log_params({k: redact(v) for k, v in params.items()})
    for name, text in (artifacts or {}).items():
        mlflow.log_text(redact(text), name)
    return run
