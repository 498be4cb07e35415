"""The RL prompt pool: ``rl.num_prompts`` training-pool prompts, with ``rl.prompts: unseen`` none of them a problem
of the start's SFT examples (a problem: what the task's ``key`` names, for GeneralPoints the card values under the
rule and the target). The trunk's examples are re-made from its recorded config and seed and checked against the
``data_hash`` its manifest records, so a pool is never filtered against the wrong examples; that is done once, when
the RL job is planned, and the job carries the problems to its workers."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

MAX_DRAW_FACTOR = 64
"""Draw at most this many times ``rl.num_prompts`` from the training pool while looking for unseen problems."""


def trunk_sft_problems(manifest: dict | None) -> frozenset[str]:
    """The problems (task keys) of the SFT examples of the trunk a start checkpoint's ``manifest`` belongs to."""
    from raysweep.config import ConfigError

    if not manifest or "trunk_dir" not in manifest or "seed" not in manifest:
        raise ConfigError("rl.prompts=unseen keeps RL off the trunk's SFT problems, so the start must be a trunk "
                          "checkpoint (its manifest names the trunk): start from rl.trunk + rl.sft_step, or set "
                          "rl.prompts=pool")
    return _trunk_problems(str(manifest["trunk_dir"]), int(manifest["seed"]), manifest.get("data_hash"))


@lru_cache(maxsize=16)
def _trunk_problems(trunk_dir: str, seed: int, data_hash: str | None) -> frozenset[str]:
    # cached: a sweep plans several RL cells from each trunk
    from raysweep.config import ConfigError, load_config
    from raysweep.tasks.protocol import task_of
    from raysweep.train.sft_data import examples_hash, sft_examples

    path = Path(trunk_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"rl.prompts=unseen: {path} (the trunk's recorded config) is missing, so its SFT examples "
                          "cannot be re-made; set rl.prompts=pool")
    cfg = load_config(path)
    rows = sft_examples(cfg, seed)
    made = examples_hash(rows, cfg.sft.revision_share)
    if data_hash and made != data_hash:
        raise ConfigError(f"rl.prompts=unseen: the SFT examples re-made from {path} (seed {seed}) hash to {made}, but "
                          f"the trunk trained on {data_hash}: the task code changed since; re-make the trunk or set "
                          "rl.prompts=pool")
    task = task_of(cfg.task)
    return frozenset(task.key(r) for r in rows.to_list())


def rl_prompts(task: Any, n: int, seed: int, exclude: set[str] = frozenset(), stated: dict | None = None) -> Any:
    """``n`` RL prompt rows (``task.rl_dataset``'s stream at ``seed``, in order) whose problem is not in
    ``exclude``; the first ``n`` that qualify, so the pool is the same on any machine (fewer when the task's
    prompts run out, as ``rl_dataset`` itself gives fewer). ``stated``: ``rl.rules`` as ``RLConfig.stated()``
    gives it (prompts under rules to be read), passed to ``rl_dataset``."""
    from raysweep.config import ConfigError

    more = stated or {}
    if not exclude:
        return task.rl_dataset(n, seed, **more)
    draw = n
    while True:
        ds = task.rl_dataset(draw, seed, **more)
        keep = [i for i, r in enumerate(ds.to_list()) if task.key(r) not in exclude]
        if len(keep) >= n:
            return ds.select(keep[:n])
        exhausted = len(ds) < draw  # a task with a finite prompt set (a file) returns all of it
        if (exhausted and not keep) or (not exhausted and draw >= MAX_DRAW_FACTOR * n):
            raise ConfigError(f"rl.prompts=unseen: only {len(keep)} of {len(ds)} training-pool prompts lie outside "
                              f"the trunk's {len(exclude)} SFT problems (need {n}): lower rl.num_prompts, or widen "
                              "the training pool (GeneralPoints: task.targets, task.num_cards, task.eval_fraction; a "
                              "file task: more RL rows)")
        if exhausted:  # as with rl.prompts=pool, a finite set gives what it has
            return ds.select(keep)
        draw *= 4
