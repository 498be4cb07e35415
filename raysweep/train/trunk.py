"""Where a trunk lives on disk, what names its checkpoints, and what counts as finished.

Layout (``<output_dir>/trunks/<trunk_id>/seed-<s>/``)::

    config.yaml              resolved config of the run that created the trunk
    results.jsonl            one JSON object per event: train losses, checkpoint evaluations, resumes
    mlflow_run_id            the trunk's MLflow run (resumed, never duplicated)
    checkpoints/step-<k>/    a Hugging Face model directory (safetensors, config, tokenizer) + manifest.json
    trainer/                 the trainer's own resumable state (optimizer, DeepSpeed shards), latest only

``trunk_id`` hashes everything that shapes the training trajectory (base model, task, SFT settings but
not the seed list or the checkpoint list), so asking for more SFT lengths later extends the same trunk.
A checkpoint is finished when its ``manifest.json`` exists: it is written last, after the weights and
the evaluation.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator


def digest(obj: Any, n: int = 12) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def trunk_id(model_name: str, task: dict, sft_identity: dict) -> str:
    return digest({"model": model_name, "task": task, "sft": sft_identity})


def trunk_dir(output_dir: str | Path, tid: str, seed: int) -> Path:
    return Path(output_dir).resolve() / "trunks" / tid / f"seed-{seed}"


def checkpoint_dir(tdir: Path, step: int) -> Path:
    return tdir / "checkpoints" / f"step-{step}"


def read_manifest(path: Path) -> dict | None:
    f = path / "manifest.json"
    if not f.is_file():
        return None
    return json.loads(f.read_text())


def finished_steps(tdir: Path) -> set[int]:
    root = tdir / "checkpoints"
    if not root.is_dir():
        return set()
    return {int(p.name.split("-", 1)[1]) for p in root.glob("step-*") if (p / "manifest.json").is_file()}


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)


def append_result(tdir: Path, record: dict) -> None:
    """Append one event to ``results.jsonl`` (flushed and fsynced: a kill loses nothing written)."""
    record = {"time": time.time(), **record}
    with open(tdir / "results.jsonl", "a") as f:
        f.write(json.dumps(record, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_results(tdir: Path) -> Iterator[dict]:
    f = tdir / "results.jsonl"
    if not f.is_file():
        return iter(())
    return (json.loads(line) for line in f.read_text().splitlines() if line.strip())


def latest_trainer_checkpoint(tdir: Path) -> Path | None:
    """The newest complete trainer checkpoint (``trainer/checkpoint-<step>`` with its trainer_state.json)."""
    root = tdir / "trainer"
    if not root.is_dir():
        return None
    done = [p for p in root.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def write_job(run_dir: Path, job: dict, config_yaml: str) -> Path:
    """Create a run directory with its resolved config and the job file its workers read; the job path."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(config_yaml)
    (run_dir / "job.json").write_text(json.dumps(job, indent=1))
    return run_dir / "job.json"
