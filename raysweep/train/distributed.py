"""The process's place in a torch.distributed job, however it was started (Ray Train, torchrun, plain)."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    rank: int
    world: int
    local_rank: int
    cuda: bool

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> str:
        return f"cuda:{self.local_rank}" if self.cuda else "cpu"

    @property
    def backend(self) -> str:
        return "nccl" if self.cuda else "gloo"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(use_gpu: bool | None, threads: int | None = None) -> Place:
    """Join (or start) the process group: Ray Train and torchrun set RANK/WORLD_SIZE/MASTER_*; a plain
    process becomes a world of one on loopback. DeepSpeed is initialised on top (ZeRO-3 needs it before
    ``from_pretrained``)."""
    import torch

    for key, default in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0"), ("MASTER_ADDR", "127.0.0.1")):
        os.environ.setdefault(key, default)
    if "MASTER_PORT" not in os.environ:
        os.environ["MASTER_PORT"] = str(_free_port())
    cuda = torch.cuda.is_available() and use_gpu is not False
    place = Place(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]), cuda)
    if cuda:
        torch.cuda.set_device(place.local_rank)
    elif threads:
        torch.set_num_threads(threads)
    import deepspeed

    deepspeed.init_distributed(dist_backend=place.backend)
    return place


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank (a picklable object; itself in a world of one)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    return obj


@contextmanager
def plain_loading():
    """Load a full, unpartitioned model even while a ZeRO-3 trainer is alive (transformers would otherwise
    partition every ``from_pretrained`` under ``zero.Init``): evaluation needs whole weights."""
    from transformers.integrations import deepspeed as hf_ds

    saved = hf_ds._hf_deepspeed_config_weak_ref
    hf_ds._hf_deepspeed_config_weak_ref = None
    try:
        yield
    finally:
        hf_ds._hf_deepspeed_config_weak_ref = saved


def job_file_main(fn, stage: str, argv: list[str] | None = None) -> int:
    """The ``python -m raysweep.train.<stage>_worker --job job.json`` entry point (torchrun or alone)."""
    import argparse
    import json
    from pathlib import Path

    ap = argparse.ArgumentParser(description=f"Run one {stage.upper()} worker (under torchrun or alone).")
    ap.add_argument("--job", required=True, help=f"job JSON written by `raysweep {stage} --plan-only`")
    fn(json.loads(Path(ap.parse_args(argv).job).read_text()))
    return 0
