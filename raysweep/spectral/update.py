"""How much RL moved the model, against how much SFT had: the measure that tells a weak RL from a failed recovery.

For an RL cell with checkpoints ``base`` (before SFT), ``start`` (the SFT checkpoint RL started from) and ``final``
(after RL), over the matrices the spectral analysis reads (``spectral.modules``):

- ``rl_update`` = ||final − start||_F / ||start||_F and ``sft_drift`` = ||start − base||_F / ||base||_F, each pooled
  over the matrices (the square root of the summed squares);
- ``ratio`` = rl_update / sft_drift (**RL update / SFT drift**; None when SFT had not moved the weights: RL from the
  base itself);
- on ``angle_matrices`` matrices spread over the blocks, the mean principal angle (degrees, top ``fraction`` of each
  rank, left and right subspaces averaged) of base ↔ start and base ↔ final; ``angle_change`` = the second − the
  first: negative when RL turned the singular directions back toward the base's, positive when further away, and
  ``angle_rl`` = start ↔ final, how far RL rotated them at all.

The norms read each matrix once per checkpoint (cheap at any size); the angles need SVDs, so they are taken on a few
matrices only (0: none). :func:`cell_update` computes it for an RL run directory and stores it (``update.json``), so
the trial computes it where the weights are (a cluster node) and the report reads it; :func:`read_update` is that
read, computing it only when the file is missing and the checkpoints are still there.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

UPDATE_FILE = "update.json"
ANGLE_FRACTION = 0.1


def pooled_relative(deltas_sq: Sequence[float], refs_sq: Sequence[float]) -> float:
    """sqrt(sum ||delta||^2) / sqrt(sum ||ref||^2) (pure); NaN when the reference is all zeros."""
    ref = math.fsum(refs_sq)
    return math.sqrt(math.fsum(deltas_sq) / ref) if ref > 0 else float("nan")


def update_ratio(rl_update: float, sft_drift: float) -> float | None:
    """RL update / SFT drift (pure); None where SFT had not moved the weights (nothing to compare with)."""
    if not sft_drift > 1e-12 or rl_update != rl_update:
        return None
    return rl_update / sft_drift


def spread(items: Sequence, n: int) -> list:
    """``n`` items evenly spread over ``items`` (the first and last included; all of them when n >= len)."""
    if n <= 0 or not items:
        return []
    if n >= len(items):
        return list(items)
    if n == 1:
        return [items[len(items) // 2]]
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def measure(base: str | Path, start: str | Path, final: str | Path, spectral_cfg, angle_matrices: int = 4) -> dict:
    """The update measures of one RL cell (see the module docstring), from three checkpoint directories."""
    import torch

    from raysweep.spectral.maths import principal_angles, svd
    from raysweep.spectral.spectral_config import top_k
    from raysweep.spectral.weights import common_matrices, load, tensor_files

    paths = [str(base), str(start), str(final)]
    mats = common_matrices(paths, spectral_cfg)
    files = [tensor_files(p) for p in paths]
    rl_sq, start_sq, sft_sq, base_sq = [], [], [], []
    for m in mats:
        wb, ws, wf = (load(f, m.name).to(torch.float64) for f in files)
        rl_sq.append(float(torch.linalg.matrix_norm(wf - ws) ** 2))
        start_sq.append(float(torch.linalg.matrix_norm(ws) ** 2))
        sft_sq.append(float(torch.linalg.matrix_norm(ws - wb) ** 2))
        base_sq.append(float(torch.linalg.matrix_norm(wb) ** 2))
    rl_update, sft_drift = pooled_relative(rl_sq, start_sq), pooled_relative(sft_sq, base_sq)
    out = {"rl_update": rl_update, "sft_drift": sft_drift, "ratio": update_ratio(rl_update, sft_drift),
           "matrices": len(mats), "angle_fraction": ANGLE_FRACTION}
    angles: dict[str, list[float]] = {"base_start": [], "base_final": [], "start_final": []}
    chosen = spread(mats, angle_matrices)
    for m in chosen:
        sb, ss, sf = (svd(load(f, m.name)) for f in files)
        k = top_k(sb.rank, ANGLE_FRACTION)

        def mean_angle(a, b) -> float:
            u = principal_angles(a.U[:, :k], b.U[:, :k]).mean()
            v = principal_angles(a.V[:, :k], b.V[:, :k]).mean()
            return float(torch.rad2deg((u + v) / 2))

        angles["base_start"].append(mean_angle(sb, ss))
        angles["base_final"].append(mean_angle(sb, sf))
        angles["start_final"].append(mean_angle(ss, sf))
    if chosen:
        mean = {k: sum(v) / len(v) for k, v in angles.items()}
        out.update({"angle_base_start": mean["base_start"], "angle_base_final": mean["base_final"],
                    "angle_rl": mean["start_final"], "angle_change": mean["base_final"] - mean["base_start"],
                    "angle_matrices": [m.name for m in chosen]})
    return out


def cell_update(run_dir: str | Path, base: str | Path, start: str | Path, spectral_cfg,
                angle_matrices: int = 4) -> dict:
    """Measure the finished RL run in ``run_dir`` (its ``final`` checkpoint) and store it as ``update.json``."""
    from raysweep.train.trunk import write_json_atomic

    rdir = Path(run_dir)
    out = {"base": str(base), "start": str(start), "final": str(rdir / "final"),
           **measure(base, start, rdir / "final", spectral_cfg, angle_matrices)}
    write_json_atomic(rdir / UPDATE_FILE, out)
    return out


def base_of(cfg, job: dict) -> str:
    """The checkpoint an RL job's SFT started from: its trunk's step 0 (or, without one, the sweep's base model)."""
    from raysweep.spectral.sources import base_checkpoint
    from raysweep.train.pretrain import base_model_path

    trunk = (job.get("start_manifest") or {}).get("trunk_dir")
    return base_checkpoint(cfg, Path(trunk)) if trunk else base_model_path(cfg)


def has_weights(ckpt: str | Path) -> bool:
    """Whether ``ckpt`` is a directory with safetensors weights (cheap: no file is opened)."""
    d = Path(ckpt)
    return (d / "model.safetensors").is_file() or (d / "model.safetensors.index.json").is_file()


def read_update(run_dir: str | Path, base: str | Path | None = None, start: str | Path | None = None,
                spectral_cfg=None, angle_matrices: int = 4) -> dict | None:
    """The stored measures of an RL run; when missing (a run made before they existed) and ``base``/``start`` are
    given and every checkpoint is still there, computed now and stored; else None."""
    rdir = Path(run_dir)
    f = rdir / UPDATE_FILE
    if f.is_file():
        return json.loads(f.read_text())
    if base is None or start is None or spectral_cfg is None:
        return None
    from raysweep.spectral.weights import CheckpointError

    try:
        return cell_update(rdir, base, start, spectral_cfg, angle_matrices)
    except (CheckpointError, OSError, ValueError):
        return None
