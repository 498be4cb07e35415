"""Where the linear algebra runs: groups of weight matrices as Ray tasks (or in this process).

A task gets a few matrix names, the checkpoints and the work to do with them; for each matrix in turn it
reads that matrix from every checkpoint it needs, takes each SVD once (float64) and does all the work
that uses them, then drops them. Memory per task is one matrix's SVDs for the checkpoints involved;
how many tasks run at once is bounded by ``spectral.cpus_per_task``. The task functions are plain
functions: ``executor=local`` (or a process without Ray) runs them in order, here.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from raysweep.spectral.spectral_config import SpectralConfig
from raysweep.spectral.weights import Matrix


def chunks(items: Sequence, size: int) -> list[list]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def _dtype(cfg: SpectralConfig):
    import torch

    return torch.float64 if cfg.dtype == "float64" else torch.float32


def _threads(cfg: SpectralConfig) -> None:
    import torch

    torch.set_num_threads(max(1, int(cfg.cpus_per_task)))


def compare_group(ckpts: list[str], pairs: list[tuple[int, int]], matrices: list[Matrix],
                  cfg: SpectralConfig) -> list[dict]:
    """One row per (pair, matrix): :func:`raysweep.spectral.maths.compare` of target against ref."""
    from raysweep.spectral.maths import compare, svd
    from raysweep.spectral.weights import load, tensor_files

    _threads(cfg)
    files = {i: tensor_files(ckpts[i]) for i in sorted({i for p in pairs for i in p})}
    rows = []
    for m in matrices:
        svds = {i: svd(load(f, m.name), _dtype(cfg)) for i, f in files.items()}
        for p, (r, t) in enumerate(pairs):
            rows.append({"pair": p, "name": m.name, "module": m.module, "layer": m.layer,
                         "rows": m.shape[0], "cols": m.shape[1], **compare(svds[r], svds[t], cfg.fractions)})
        del svds
    return rows


def edit_group(ref: str, target: str, matrices: list[Matrix], edits: list[str], out_dir: str,
               part: int, cfg: SpectralConfig) -> dict[str, str]:
    """Edit each matrix every way in ``edits``; write ``<out_dir>/<edit>/part-<part>.safetensors`` (in the
    target's dtype); return edit -> file."""
    import torch
    from safetensors.torch import save_file

    from raysweep.spectral.maths import edit_matrix, svd
    from raysweep.spectral.weights import load, tensor_files

    _threads(cfg)
    rf, tf = tensor_files(ref), tensor_files(target)
    out: dict[str, dict[str, torch.Tensor]] = {e: {} for e in edits}
    for m in matrices:
        w_t = load(tf, m.name)
        a, b = svd(load(rf, m.name), _dtype(cfg)), svd(w_t, _dtype(cfg))
        for e in edits:
            out[e][m.name] = edit_matrix(a, b, e).to(w_t.dtype).contiguous()
    files = {}
    for e, tensors in out.items():
        d = Path(out_dir) / edit_dirname(e)
        d.mkdir(parents=True, exist_ok=True)
        f = d / f"part-{part}.safetensors"
        tmp = f.with_suffix(".tmp")
        save_file(tensors, str(tmp))
        tmp.replace(f)
        files[e] = str(f)
    return files


def edit_dirname(edit: str) -> str:
    return edit.replace(":", "-")


def run_tasks(fn: Callable, calls: list[tuple], cfg: SpectralConfig, what: str) -> list:
    """``[fn(*args) for args in calls]``, as Ray tasks (``executor=ray``) or here; progress to stderr."""
    t0 = time.time()
    out: list = [None] * len(calls)
    if cfg.executor == "local" or not calls:
        for i, args in enumerate(calls):
            out[i] = fn(*args)
            _progress(what, i + 1, len(calls), t0)
        return out
    import ray

    from raysweep.train.launch import ensure_ray

    ensure_ray()
    remote = ray.remote(num_cpus=cfg.cpus_per_task, max_retries=2)(fn)
    pending = {remote.remote(*args): i for i, args in enumerate(calls)}
    done = 0
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            out[pending.pop(ref)] = ray.get(ref)
            done += 1
        _progress(what, done, len(calls), t0)
    return out


def _progress(what: str, done: int, total: int, t0: float) -> None:
    el = time.time() - t0
    eta = el / done * (total - done) if done else 0.0
    if done == total or done == 1 or done % max(1, total // 10) == 0:
        print(f"[spectral] {what}: {done}/{total} tasks, {el:.0f}s elapsed, ~{eta:.0f}s left",
              file=sys.stderr, flush=True)
