"""The weight matrices of a checkpoint, read one at a time from its safetensors files (never pickle).

A checkpoint is a Hugging Face model directory: ``model.safetensors``, or shards listed in
``model.safetensors.index.json``. Tensors are memory-mapped and read by name, so a task holds only the
matrices it works on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from raysweep.spectral.spectral_config import SpectralConfig


class CheckpointError(RuntimeError):
    """A checkpoint directory that cannot be read; the message names the file."""


@dataclass(frozen=True)
class Matrix:
    name: str  # the tensor's name in the checkpoint
    module: str  # its module type (q_proj, ...)
    layer: int  # its block index
    shape: tuple[int, int]


def tensor_files(ckpt: str | Path) -> dict[str, Path]:
    """Tensor name -> the safetensors file holding it. Refuses directories with only pickled weights."""
    d = Path(ckpt)
    if not d.is_dir():
        raise CheckpointError(f"{d}: not a checkpoint directory")
    index = d / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"{index}: not a safetensors index ({exc})") from None
        return {name: d / f for name, f in weight_map.items()}
    single = d / "model.safetensors"
    if single.is_file():
        return {name: single for name in _keys(single)}
    pickled = [p.name for p in d.glob("*.bin")] + [p.name for p in d.glob("*.pt")]
    hint = f" (found {pickled}: pickled weights are not loaded)" if pickled else ""
    raise CheckpointError(f"{d}: no model.safetensors or model.safetensors.index.json{hint}")


def _keys(path: Path) -> list[str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return list(f.keys())
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a damaged file
        raise CheckpointError(f"{path}: cannot read safetensors header ({exc})") from None


def _shape(path: Path, name: str) -> tuple[int, ...]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return tuple(f.get_slice(name).get_shape())


def select(ckpt: str | Path, cfg: SpectralConfig) -> list[Matrix]:
    """The 2-D block weights of ``ckpt`` that ``cfg`` analyses, ordered by block then module type."""
    pattern = re.compile(cfg.layer_pattern)
    out = []
    for name, path in tensor_files(ckpt).items():
        if not name.endswith(".weight"):
            continue
        module = name[: -len(".weight")].rsplit(".", 1)[-1]
        m = pattern.search(name)
        if module not in cfg.modules or m is None:
            continue
        shape = _shape(path, name)
        if len(shape) != 2:
            continue
        out.append(Matrix(name, module, int(m.group(1)), (int(shape[0]), int(shape[1]))))
    order = {mod: i for i, mod in enumerate(cfg.modules)}
    return sorted(out, key=lambda x: (x.layer, order[x.module], x.name))


def load(files: dict[str, Path], name: str):
    """One tensor by name (a CheckpointError naming the file if it is missing or damaged)."""
    from safetensors import safe_open

    path = files.get(name)
    if path is None:
        raise CheckpointError(f"tensor {name!r} is not in the checkpoint (files: {sorted(set(map(str, files.values())))})")
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.get_tensor(name)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path}: cannot read tensor {name!r} ({exc})") from None


def common_matrices(ckpts: Sequence[str | Path], cfg: SpectralConfig) -> list[Matrix]:
    """The analysed matrices, checked to exist with the same shapes in every checkpoint."""
    first = select(ckpts[0], cfg)
    if not first:
        raise CheckpointError(f"{ckpts[0]}: no 2-D weight matches spectral.modules {list(cfg.modules)} with a block "
                              f"index (spectral.layer_pattern {cfg.layer_pattern!r})")
    want = {m.name: m.shape for m in first}
    for c in ckpts[1:]:
        have = {m.name: m.shape for m in select(c, cfg)}
        if have != want:
            missing = sorted(set(want) - set(have))[:3]
            differ = sorted(n for n in set(want) & set(have) if want[n] != have[n])[:3]
            raise CheckpointError(f"{c} does not have the same weight matrices as {ckpts[0]} "
                                  f"(missing {missing}, different shapes {differ}): not the same architecture")
    return first
