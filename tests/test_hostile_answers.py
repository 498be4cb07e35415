"""The verifier against hostile model answers (``raysweep.tasks.hostile``): no exception, sane verdicts.

A fixed seed and a few hundred answers per run; timing is the benchmark's business
(``bench/hostile_answers.py``), never asserted here.
"""

import dataclasses
import os
from collections import Counter
from fractions import Fraction

import pytest

from raysweep.tasks.generalpoints import VERDICTS, Score, score
from raysweep.tasks.hostile import (
    CANARY,
    CATEGORIES,
    RULES,
    TARGET,
    Case,
    NotAFormula,
    check,
    exact_value,
    hostile_cases,
    make_case,
)

N = 800
SEED = 7


def test_hostile_answers_never_raise_and_get_sane_verdicts():
    if os.path.exists(CANARY):
        os.remove(CANARY)
    problems, verdicts, categories = [], Counter(), Counter()
    for case in hostile_cases(N, SEED):
        categories[case.category] += 1
        reward = ("binary", "paper")[case.index % 2]
        for rule in RULES:
            try:
                s = score(case.cards, case.text, rule, TARGET, reward)
            except Exception as exc:  # noqa: BLE001 - any exception is the failure reported
                problems.append(f"case {case.index} ({case.category}, {rule}): raised {exc!r}")
                continue
            verdicts[s.verdict] += 1
            problems += [f"case {case.index} ({case.category}, {rule}): {p}; text {case.text[:120]!r}"
                         for p in check(case, rule, TARGET, reward, s)]
    assert not problems, (f"{len(problems)} problem(s) (reproduce: make_case(index, {SEED})):\n"
                          + "\n".join(problems[:20]))
    assert not os.path.exists(CANARY), "a code-injection payload ran"
    assert set(categories) == set(CATEGORIES) and min(categories.values()) >= N // len(CATEGORIES)
    # every branch of the check was exercised (train_rule_values needs a training rule: tests/test_verifier.py)
    assert all(verdicts[v] > 0 for v in VERDICTS if v != "train_rule_values"), verdicts
    assert max(len(c.text) for c in hostile_cases(N, SEED)) >= 100_000  # the long inputs are there


def test_cases_are_reproducible_one_by_one():
    assert make_case(123, SEED) == make_case(123, SEED) == list(hostile_cases(124, SEED))[123]
    assert make_case(123, SEED) != make_case(123, SEED + 1)


def test_exact_value_is_an_independent_exact_parser():
    assert exact_value("8/(3-8/3)") == (Fraction(24), (8, 3, 8, 3))
    assert exact_value("(1 + 2) * 8") == (Fraction(24), (1, 2, 8))
    assert exact_value("1/(2-2)+5")[0] is None  # division by zero anywhere: no value
    for text in ("", "-1", "2**3", "1.5", "(1", "1)", "1(2)", "×3", "1x"):
        with pytest.raises(NotAFormula):
            exact_value(text)


def test_the_check_catches_insane_verdicts():
    case = Case(0, "valid", ("8", "3", "8", "3"), "8/(3-8/3)", ("id", ("correct",)))
    good = score(case.cards, case.text, "id", TARGET, "paper")
    assert good.verdict == "correct" and check(case, "id", TARGET, "paper", good) == []
    assert check(case, "id", TARGET, "paper", dataclasses.replace(good, reward=1.0))  # reward of another scheme
    assert check(case, "id", TARGET, "paper", dataclasses.replace(good, verdict="wrong_value", reward=-1.0))
    assert check(case, "id", TARGET, "paper", dataclasses.replace(good, verdict="fine"))
    assert check(case, "id", TARGET, "paper", "correct")  # not a Score at all
    # "correct" for a formula that is not 24, uses other numbers, or is not a formula
    for formula in ("8+3+8+3", "8*3", "9**9", "(8/(3-8/3))*(3-3)"):
        bad = Score("correct", formula, Fraction(24), 5.0, "", (8, 3, 8, 3))
        assert check(case, "id", TARGET, "paper", bad), formula
    # a legal, in-bounds formula called malformed
    assert check(case, "id", TARGET, "paper", Score("malformed", "8*3+8-8", None, -3.0, "?"))
    assert check(Case(1, "floats", ("2", "Q"), ".2*12", (None, ("malformed",))), "ood", TARGET, "binary",
                 Score("correct", "2*12", Fraction(24), 1.0, "", (2, 12)))  # a category's excluded verdict
