"""Hugging Face ``datasets`` for GeneralPoints: SFT pairs, RL prompts and evaluation sets.

All are conversational (lists of chat messages), so TRL renders them with the model's chat template:

- ``sft_dataset``: ``prompt`` / ``completion`` (TRL trains on the completion only), ID rule, training pool;
  the completion is an expert answer built from an exact solver solution.
- ``rl_dataset``: ``prompt`` plus ``cards``, ``rule`` and ``target`` columns for the verifier reward.
- ``eval_dataset``: ``prompt``, ``cards``, ``rule``, ``target`` and an expert ``completion`` (for eval loss),
  from the evaluation pool; distinct problems (values under the rule, and the target).

Same arguments, same rows, on any machine.
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Literal, Sequence

from datasets import Dataset

from raysweep.tasks.answers import render_answer
from raysweep.tasks.generalpoints import Rule, TaskConfig, deal_stated, deal_targets, deal_varied, prompt_messages
from raysweep.tasks.solver import solve

ExpertPolicy = Literal["first", "random"]


@lru_cache(maxsize=65536)
def _solutions(values: tuple[int, ...], target: int) -> tuple[str, ...]:
    # Every solution for up to 4 cards (milliseconds); a bounded sample of them for 5-6 cards.
    return tuple(solve(values, target, limit=None if len(values) <= 4 else 24))


def expert_answer(hand: tuple[str, ...], rule_name: str | Rule, cfg: TaskConfig,
                  rng: random.Random | None, target: int | None = None) -> tuple[str, str]:
    """(formula, answer text) for one hand at ``target`` (default ``task.target``): a solver solution
    (random with ``rng``, else the first)."""
    rule = rule_name if isinstance(rule_name, Rule) else cfg.rule(rule_name)
    target = cfg.target if target is None else target
    values = [rule.value(c) for c in hand]
    sols = _solutions(tuple(sorted(values)), target)
    if not sols:
        raise ValueError(f"hand {hand} has no solution to {target} under rule {rule.name!r}")
    formula = rng.choice(sols) if rng is not None else sols[0]
    return formula, render_answer(hand, values, formula, target, cfg.answer_format)


def _rows(cfg: TaskConfig, dealt, rng: random.Random | None, with_completion: bool) -> dict:
    """The dataset's columns for ``dealt`` (hand, rule, target) triples; the ``rule`` column holds each rule's name."""
    cols: dict[str, list] = {"prompt": [], "cards": [], "rule": [], "target": []}
    if with_completion:
        cols["completion"] = []
        cols["formula"] = []
    for hand, rule, target in dealt:
        cols["prompt"].append(prompt_messages(hand, rule, cfg, target))
        cols["cards"].append(list(hand))
        cols["rule"].append(rule.name)
        cols["target"].append(target)
        if with_completion:
            formula, answer = expert_answer(hand, rule, cfg, rng, target)
            cols["completion"].append([{"role": "assistant", "content": answer}])
            cols["formula"].append(formula)
    return cols


def _under(cfg: TaskConfig, rule_name: str, pairs) -> list[tuple[tuple[str, ...], Rule, int]]:
    rule = cfg.rule(rule_name)
    return [(hand, rule, target) for hand, target in pairs]


def sft_dataset(cfg: TaskConfig, n: int, seed: int, expert: ExpertPolicy = "random", unique: bool = False,
                revision_share: float = 0.0, revision_attempts: int = 2) -> Dataset:
    """``n`` SFT examples under the training rule (training pool); with ``task.face_values``, each under
    its own varied rule (the ``rule`` column reads ``varied``, the prompt states the values) and, with
    ``task.target_values``, its own target. With ``revision_share`` > 0 a ``revision`` column holds, for that share
    of the examples (seeded), the turns of a failed first attempt before the expert answer (``[assistant: a
    plausible wrong answer, user: its feedback]``, up to ``revision_attempts - 1`` such pairs,
    :mod:`raysweep.tasks.revisions`), else ``[]``."""
    rng = random.Random(f"raysweep:expert:{seed}") if expert == "random" else None
    if cfg.face_values is not None:
        dealt = deal_varied(cfg, n, seed, "sft")
    else:
        dealt = _under(cfg, cfg.train_rule, deal_targets(cfg, cfg.train_rule, n, seed, "sft", unique=unique))
    cols = _rows(cfg, dealt, rng, with_completion=True)
    rules = [rule for _, rule, _ in dealt]
    if revision_share > 0:
        from raysweep.tasks.revisions import revision_turns

        pick = random.Random(f"raysweep:revision:{seed}")
        cols["revision"] = [
            revision_turns(tuple(c), rule, t, f, cfg, pick, revision_attempts) if pick.random() < revision_share
            else []
            for c, rule, t, f in zip(cols["cards"], rules, cols["target"], cols["formula"], strict=True)]
    return Dataset.from_dict(cols)


def rl_dataset(cfg: TaskConfig, n: int, seed: int, rules: Sequence[str] = (), face_values: tuple[int, int] = (1, 13),
               face_tied: float = 0.0) -> Dataset:
    """``n`` RL prompts under the training rule (training pool; with ``task.rl_fraction``, its RL share only), with
    ``cards``/``rule``/``target`` for the reward. With ``rules`` (``rl.rules``) each prompt states a rule of its own
    that must be read (:func:`~raysweep.tasks.generalpoints.deal_stated`); the ``rule`` column names it (a task
    rule, or ``stated:J=..,Q=..,K=..``), so the scorer and the feedback apply it."""
    if cfg.face_values is not None:
        raise ValueError("task.face_values varies the rule of SFT examples only (a pre-training stage); RL prompts "
                         "use task.train_rule, or the rules of rl.rules: unset task.face_values for RL")
    if rules:
        dealt = deal_stated(cfg, rules, n, seed, face_values, face_tied)
    else:
        dealt = _under(cfg, cfg.train_rule, deal_targets(cfg, cfg.train_rule, n, seed, "rl"))
    return Dataset.from_dict(_rows(cfg, dealt, None, with_completion=False))


def eval_dataset(cfg: TaskConfig, rule_name: str, n: int, seed: int = 0) -> Dataset:
    """``n`` distinct evaluation problems under ``rule_name`` (evaluation pool) with an expert completion."""
    dealt = _under(cfg, rule_name, deal_targets(cfg, rule_name, n, seed, "eval"))
    return Dataset.from_dict(_rows(cfg, dealt, None, with_completion=True))
