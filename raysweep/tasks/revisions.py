"""Revision episodes for SFT (``sft.revision_share``): a plausible wrong first answer, the verifier's feedback on it
(as the model would get it under ``task.attempts`` > 1), with ``sft.revision_attempts`` > 2 more wrong answers and
their feedback, then the expert answer (pure).

The wrong first answers are the failures the feedback is about, drawn uniformly among those that apply to the hand:

- ``train_values``: the hand's numbers under the training rule where the stated rule gives its face cards other
  values (J/Q/K counted as 10 under a rule that says otherwise): the OOD failure, which the feedback names;
- ``wrong_number``: the expert formula with one number changed (wrong numbers);
- ``wrong_value``: the expert formula with one operator changed, so it reaches another value.

Each is rendered like an expert answer (its ``Numbers`` line shows the numbers it used) and checked by the
verifier: a wrong answer that happens to be correct is never used. Trained with the loss on the expert answer
only: the wrong answer and the feedback turn are context, never imitated.
"""

from __future__ import annotations

import random
import re
from typing import Sequence

from raysweep.tasks.answers import render_answer
from raysweep.tasks.feedback import judge
from raysweep.tasks.generalpoints import Rule, TaskConfig
from raysweep.tasks.solver import solve

_NUMBER = re.compile(r"\d+")
_OPERATOR = re.compile(r"[-+*/]")


def _train_values(hand: Sequence[str], rule: Rule, target: int, cfg: TaskConfig, rng: random.Random):
    train = cfg.rule(cfg.train_rule)
    values = [train.value(c) for c in hand]
    if sorted(values) == sorted(rule.value(c) for c in hand):
        return None
    sols = solve(tuple(sorted(values)), target, limit=24)
    return (values, rng.choice(sols)) if sols else None


def _wrong_number(hand, rule: Rule, formula: str, rng: random.Random):
    spots = list(_NUMBER.finditer(formula))
    m = rng.choice(spots)
    old = int(m.group())
    new = max(1, old + rng.choice([-2, -1, 1, 2]))
    if new == old:
        new = old + 1
    changed = formula[:m.start()] + str(new) + formula[m.end():]
    values = [rule.value(c) for c in hand]  # in card order, as an expert answer lists them, one changed
    values[values.index(old)] = new
    return values, changed


def _wrong_value(hand, rule: Rule, formula: str, rng: random.Random):
    spots = list(_OPERATOR.finditer(formula))
    if not spots:
        return None
    m = rng.choice(spots)
    op = rng.choice([o for o in "+-*/" if o != m.group()])
    changed = formula[:m.start()] + op + formula[m.end():]
    return [rule.value(c) for c in hand], changed


def wrong_attempt(hand: Sequence[str], rule: Rule, target: int, formula: str, cfg: TaskConfig,
                  rng: random.Random) -> tuple[str, str, str] | None:
    """(kind, answer text, its feedback) of a plausible wrong answer to ``hand`` under ``rule`` whose expert
    formula is ``formula``; None when no kind gives a wrong answer (rare: every change happened to be correct)."""
    kinds = ["train_values", "wrong_number", "wrong_value"]
    rng.shuffle(kinds)
    for kind in kinds:
        if kind == "train_values":
            made = _train_values(hand, rule, target, cfg, rng)
        elif kind == "wrong_number":
            made = _wrong_number(hand, rule, formula, rng)
        else:
            made = _wrong_value(hand, rule, formula, rng)
        if made is None:
            continue
        values, wrong = made
        text = render_answer(hand, values, wrong, target, cfg.answer_format)
        _, message = judge(hand, text, rule, target, cfg)
        if message is not None:
            return kind, text, message
    return None


def revision_turns(hand: Sequence[str], rule: Rule, target: int, formula: str, cfg: TaskConfig,
                   rng: random.Random, attempts: int = 2) -> list[dict]:
    """The turns before the expert answer of a revision episode of up to ``attempts`` attempts: between 1 and
    ``attempts - 1`` wrong answers (uniform; 1 with the default 2), each followed by its feedback,
    ``[assistant: wrong answer, user: feedback, ...]``; no wrong answer repeats an earlier one (fewer are kept when
    no new one can be made), and the list is empty when none could be made."""
    wanted = 1 if attempts <= 2 else rng.randint(1, attempts - 1)  # the default draws nothing more from rng
    turns: list[dict] = []
    seen: set[str] = set()
    for _ in range(wanted):
        tries = (wrong_attempt(hand, rule, target, formula, cfg, rng) for _ in range(4))
        made = next((m for m in tries if m is None or m[1] not in seen), None)  # None: none left, or only repeats
        if made is None:
            break
        _, text, message = made
        seen.add(text)
        turns += [{"role": "assistant", "content": text}, {"role": "user", "content": message}]
    return turns
