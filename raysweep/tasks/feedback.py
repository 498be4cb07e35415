"""The verifier's feedback on a failed attempt, as the paper's environment words it (pure).

The seed's code (RL_Heals_SFT, from SFTvsRL) gives the model up to ``verify_iter`` attempts per hand and, after
each failed one, appends a user turn ``"You failed this trial because <reason>"``. Its reasons, by failure:

- wrong numbers: ``you used invalid numbers: [10]`` (numbers that are no card's value), else
  ``you used numbers: [5] too many times``; then ``you didn't use numbers: [11]`` (card values left out). On an
  OOD hand answered with the ID values, the message names both: what was wrong and the stated values;
- an illegal or unparsable formula: ``your formula is illegal (<the parser's reason>)``;
- right numbers, wrong value: the paper matches the formula against its solution prefixes; raysweep says
  which value was reached instead: ``your formula uses the right numbers but equals 23, not 24``.

The texts are data: :data:`MESSAGES`, overridable per key (``messages=``), each a ``str.format`` template with
the fields named below. ``raysweep task feedback`` prints the message a model would get.
"""

from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

from raysweep.tasks.generalpoints import Rule, Score, parse_cards, score

MESSAGES: dict[str, str] = {
    "prefix": "You failed this trial because ",
    "invalid_numbers": "you used invalid numbers: {numbers}",  # numbers that are no card's value
    "overused_numbers": "you used numbers: {numbers} too many times",
    "unused_numbers": "you didn't use numbers: {numbers}",  # card values the formula left out
    "malformed": "your formula is illegal ({detail})",
    "wrong_value": "your formula uses the right numbers but equals {value}, not {target}",
    "join": ", ",
}
"""Every message's template; keys and fields: invalid/overused/unused_numbers {numbers}; malformed {detail};
wrong_value {value} {target}; ``prefix`` starts every message, ``join`` joins the wrong-number reasons."""


def check_messages(messages: Mapping[str, str]) -> dict[str, str]:
    """``MESSAGES`` with ``messages`` over them; an unknown key is refused, naming the known ones."""
    unknown = sorted(set(messages) - set(MESSAGES))
    if unknown:
        raise ValueError(f"feedback messages: unknown key(s) {unknown}; known: {sorted(MESSAGES)}")
    return {**MESSAGES, **messages}


def _listed(counter: Counter) -> list[int]:
    return sorted(counter.elements())


def feedback(s: Score, values: Sequence[int], target: int, messages: Mapping[str, str] | None = None) -> str | None:
    """The feedback on the attempt scored ``s`` for a hand whose card values (under the stated rule) are
    ``values``; None when the attempt is correct."""
    m = check_messages(messages or {})
    if s.correct:
        return None
    if s.verdict == "malformed":
        return m["prefix"] + m["malformed"].format(detail=s.detail or "no formula found")
    if s.verdict == "wrong_value":
        value = "undefined (a division by zero)" if s.value is None else str(s.value)
        return m["prefix"] + m["wrong_value"].format(value=value, target=target)
    used, cards = Counter(s.numbers), Counter(values)
    reasons = []
    invalid = Counter({v: c for v, c in used.items() if v not in cards})
    overused = [v for v, c in used.items() if v in cards and c > cards[v]]
    if invalid:
        reasons.append(m["invalid_numbers"].format(numbers=sorted(invalid)))
    elif overused:
        reasons.append(m["overused_numbers"].format(numbers=sorted(overused)))
    unused = cards - used
    if unused:
        reasons.append(m["unused_numbers"].format(numbers=_listed(unused)))
    return m["prefix"] + m["join"].join(reasons)


def judge(cards: Sequence[str], answer: str, rule: Rule, target: int, task,
          train_rule: Rule | None = None) -> tuple[Score, str | None]:
    """One attempt's verdict under ``task``'s reward scheme and the feedback the model gets on it under its
    messages (None when the attempt is correct): what every multi-attempt episode (evaluation, RL rollouts,
    SFT revision examples) asks of the verifier."""
    s = score(cards, answer, rule, target, task.reward, train_rule)
    if s.correct:
        return s, None
    return s, feedback(s, [rule.value(c) for c in parse_cards(cards)], target, task.feedback)
