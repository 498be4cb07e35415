"""Base models shipped inside the repository: written by ``raysweep pretrain CONFIG --export DIR``, checked on load.

A shipped base is a Hugging Face model directory plus ``raysweep-base.json``: the sha256 and size of every file,
the command and config that made it, its parameter count and its own ID/OOD evaluation. :func:`verify` runs
whenever a model spec resolves to such a directory, so a truncated copy, a Git LFS pointer in place of the
weights, or weights edited by hand fail at load with the file named and the command that re-makes it.

The built-in specs ``analogue-base`` and ``analogue-revise`` are the ones under ``raysweep/bases/``, made from
jobs/analogue-base.yaml and jobs/analogue-revise.yaml (the exact commands are in their manifests; a base exported
from an exported base lists the stages before it, ``earlier_stages``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

MANIFEST = "raysweep-base.json"
# what a model directory needs to load (training_args.bin, eval.json and the trunk's manifest stay behind)
MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
               "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")
SHIPPED = {name: Path(__file__).parent / "bases" / name for name in ("analogue-base", "analogue-revise")}


def local_dir(spec: str) -> Path:
    """The directory a model spec names when it is not built in code: a shipped base, or a path (which may not
    exist)."""
    return SHIPPED.get(spec, Path(spec).expanduser())


class BaseIdentityError(RuntimeError):
    """A shipped base whose files are not the ones its manifest lists."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_table(directory: Path) -> dict[str, dict]:
    return {name: {"sha256": sha256(directory / name), "bytes": (directory / name).stat().st_size}
            for name in MODEL_FILES if (directory / name).is_file()}


_VERIFIED: dict[Path, tuple] = {}  # directory -> the files' (name, size, mtime) when they last verified


def _stat_key(directory: Path) -> tuple:
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(directory.iterdir()) if p.is_file())


def verify(directory: Path) -> dict:
    """The manifest of a shipped base after checking every listed file; raises :class:`BaseIdentityError`.
    A directory whose files have not changed (size, mtime) since they last verified in this process is not
    hashed again: a model is resolved several times per run, and a large base costs seconds to hash."""
    directory = Path(directory).resolve()
    manifest = json.loads((directory / MANIFEST).read_text())
    key = _stat_key(directory)
    if _VERIFIED.get(directory) == key:
        return manifest
    remake = manifest.get("made_by", "raysweep pretrain CONFIG --export DIR")
    for name, want in manifest["files"].items():
        path = directory / name
        if not path.is_file():
            raise BaseIdentityError(f"model: shipped base {directory}: {name} is missing; restore it from git "
                                    f"(git checkout -- {path}) or re-make the base with `{remake}`")
        size = path.stat().st_size
        if size != want["bytes"]:
            lfs = size < 1024 and path.read_bytes().startswith(b"version https://git-lfs")
            hint = " (it is a Git LFS pointer: run `git lfs pull`)" if lfs else ""
            raise BaseIdentityError(f"model: shipped base {directory}: {name} has {size} bytes, its manifest says "
                                    f"{want['bytes']}{hint}; restore it or re-make the base with `{remake}`")
        if sha256(path) != want["sha256"]:
            raise BaseIdentityError(f"model: shipped base {directory}: {name} does not match its manifest's sha256 "
                                    f"(the file was changed); restore it or re-make the base with `{remake}`")
    _VERIFIED[directory] = key
    return manifest


def earlier_stages(model_dir: Path) -> list[dict]:
    """The pre-training stages an exported base at ``model_dir`` went through, oldest first: each one's command,
    trunk id and resolved stage config (YAML), as its manifest lists them, then its own. [] for any other model."""
    model_dir = Path(model_dir)
    if not (model_dir / MANIFEST).is_file() or not (model_dir / "config.yaml").is_file():
        return []
    own = json.loads((model_dir / MANIFEST).read_text())
    return [*own.get("earlier_stages", []), {"made_by": own.get("made_by"), "trunk_id": own.get("trunk_id"),
                                             "config": (model_dir / "config.yaml").read_text()}]


def export(checkpoint: Path, dest: Path, *, made_by: str, config_yaml: str, evals: list[dict],
           parameters: int, trunk_id: str, step: int, earlier: list[dict] = ()) -> Path:
    """Copy a base checkpoint's model files to ``dest`` and write its manifest (last, atomically); ``earlier``: the
    stages the stage's own start model went through (:func:`earlier_stages`), recorded so the whole chain of
    pre-training behind a base can be re-made and checked for held-out problems."""
    checkpoint, dest = Path(checkpoint), Path(dest)
    if not (checkpoint / "model.safetensors").is_file():
        raise FileNotFoundError(f"{checkpoint} holds no model.safetensors: it is not a finished checkpoint")
    dest.mkdir(parents=True, exist_ok=True)
    (dest / MANIFEST).unlink(missing_ok=True)
    for name in MODEL_FILES:
        if (checkpoint / name).is_file():
            shutil.copyfile(checkpoint / name, dest / name)
    (dest / "config.yaml").write_text(config_yaml)
    manifest = {"made_by": made_by, "trunk_id": trunk_id, "step": step, "parameters": parameters,
                "files": file_table(dest), "evals": evals, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                    time.gmtime())}
    if earlier:
        manifest["earlier_stages"] = list(earlier)
    tmp = dest / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    tmp.rename(dest / MANIFEST)
    return dest
