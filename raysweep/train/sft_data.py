"""A trunk's SFT examples, made the same way wherever they are needed: by the SFT worker that trains on them, and by
an RL run that must keep its prompts off the problems the trunk was trained on (``rl.prompts: unseen``)."""

from __future__ import annotations

from typing import Any

from raysweep.train import trunk as T


def sft_examples(cfg: Any, seed: int) -> Any:
    """The ``sft.num_examples`` SFT rows (prompt, completion and the scorer's columns) of the trunk of ``cfg``
    (a :class:`~raysweep.config.RaysweepConfig`) at ``seed``."""
    from raysweep.tasks.protocol import task_of

    task = task_of(cfg.task)
    own = {"expert": cfg.sft.expert, "revision_share": cfg.sft.revision_share,
           "revision_attempts": cfg.sft.revision_attempts} if task.kind == "generalpoints" else {}
    return task.sft_dataset(cfg.sft.num_examples, seed, **own)


def examples_hash(rows: Any, revision_share: float) -> str:
    """The ``data_hash`` a trunk's manifests record for its SFT rows (what it trains on: with revision episodes,
    their turns too)."""
    if revision_share:
        return T.digest([rows["prompt"], rows["revision"], rows["completion"]], 16)
    return T.digest([rows["prompt"], rows["completion"]], 16)
