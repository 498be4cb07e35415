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
import sys
import time
from pathlib import Path
from typing import Any, Iterator


def digest(obj: Any, n: int = 12) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def trunk_id(model_name: str | dict, task: dict, sft_identity: dict) -> str:
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


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it: a kill leaves the old file or the
    new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1, default=str))


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


def safetensors_problem(f: Path) -> str | None:
    """Why a safetensors file is unreadable (truncated, bad header), or None; reads only its header."""
    try:
        size = f.stat().st_size
        with open(f, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"{f}: truncated ({size} bytes, no header)"
            n = int.from_bytes(head, "little")
            if n > size - 8:
                return f"{f}: truncated (header of {n} bytes, file of {size})"
            header = json.loads(fh.read(n))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return f"{f}: unreadable header ({exc})"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end != size:
        return f"{f}: truncated or padded ({size} bytes, its header describes {8 + n + end})"
    return None


def checkpoint_problem(ckpt: Path) -> str | None:
    """Why a saved checkpoint directory (a trainer state, or a model directory) cannot be trusted, naming the
    file; None if every weights file reads and its JSON state parses. Cheap: headers and zip directories
    only, no tensor is loaded."""
    import zipfile

    for f in sorted(ckpt.rglob("*.safetensors")):
        problem = safetensors_problem(f)
        if problem:
            return problem
    for f in sorted([*ckpt.rglob("*.pt"), *ckpt.rglob("*.pth"), *ckpt.rglob("*.bin")]):
        try:  # torch.save writes zip archives; a truncated one has lost its central directory
            with zipfile.ZipFile(f):
                pass
        except (zipfile.BadZipFile, OSError) as exc:
            return f"{f}: unreadable ({exc})"
    for name in ("trainer_state.json", "manifest.json", "config.json"):
        f = ckpt / name
        if f.is_file():
            try:
                json.loads(f.read_text())
            except (ValueError, OSError) as exc:
                return f"{f}: not valid JSON ({exc})"
    return None


def latest_trainer_checkpoint(tdir: Path) -> Path | None:
    """The newest complete, readable trainer checkpoint (``trainer/checkpoint-<step>`` with its
    trainer_state.json). A damaged one (truncated weights or optimizer state, broken JSON) is skipped with
    a message naming the file, and the previous one is used (the trainers keep two)."""
    root = tdir / "trainer"
    if not root.is_dir():
        return None
    done = [p for p in root.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    for p in sorted(done, key=lambda p: int(p.name.split("-")[1]), reverse=True):
        problem = checkpoint_problem(p)
        if problem is None:
            return p
        print(f"[raysweep] skipping damaged trainer checkpoint {p.name}: {problem}; trying the one before",
              file=sys.stderr, flush=True)
    return None


def write_job(run_dir: Path, job: dict, config_yaml: str) -> Path:
    """Create a run directory with its resolved config and the job file its workers read; the job path."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "config.yaml", config_yaml)
    write_text_atomic(run_dir / "job.json", json.dumps(job, indent=1))
    return run_dir / "job.json"
