"""The exact solver: all distinct solutions, each one correct under the verifier."""

from hypothesis import given, settings
from hypothesis import strategies as st

from raysweep.tasks.generalpoints import BUILTIN_RULES, RANKS, score
from raysweep.tasks.solver import is_solvable, solve
from raysweep.tasks.verifier import evaluate_formula


def test_known_hands():
    assert solve([8, 3, 8, 3]) == ["8/(3-8/3)"]
    assert solve([1, 1, 1, 1]) == []
    assert not is_solvable([1, 1, 1, 1])
    assert is_solvable([8, 3, 8, 3])
    assert set(solve([10, 5, 3, 2])) == {"(2+10)*(5-3)", "(5+10-3)*2"}


def test_distinct_up_to_commutativity_and_associativity():
    sols = solve([6, 6, 6, 6])  # 6+6+6+6 and 6*6-6-6 are two; orderings are not new solutions
    assert "6+6+6+6" in sols and "6*6-6-6" in sols
    assert len(sols) == len(set(sols))
    canon = {evaluate_formula(s).formula for s in sols}
    assert len(canon) == len(sols)


def test_other_targets_and_sizes():
    assert solve([3, 4], target=12) == ["3*4"]
    assert solve([2, 3, 4], target=10) == ["2*3+4", "2+3*4"] or set(solve([2, 3, 4], target=10)) >= {"2*3+4"}
    assert solve([1, 2, 3, 4, 5], target=24, limit=3) and len(solve([1, 2, 3, 4, 5], target=24, limit=3)) == 3
    assert is_solvable([1, 2, 3, 4, 5, 6], target=24)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(RANKS), min_size=4, max_size=4), st.sampled_from(["id", "ood"]))
def test_every_solution_scores_correct(hand, rule):
    values = [BUILTIN_RULES[rule].value(c) for c in hand]
    sols = solve(values)
    assert bool(sols) == is_solvable(values)
    for s in sols:
        assert score(hand, s, rule).verdict == "correct", (hand, s)
        assert score(hand, f"Formula: {s}=24", rule).verdict == "correct"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 13), min_size=2, max_size=3), st.integers(1, 60))
def test_solver_agrees_with_brute_force_on_small_hands(values, target):
    # brute force: every pair-combination order with exact fractions
    from fractions import Fraction

    def reach(vals):
        if len(vals) == 1:
            return {vals[0]}
        out = set()
        for i in range(len(vals)):
            for j in range(len(vals)):
                if i == j:
                    continue
                rest = [vals[k] for k in range(len(vals)) if k not in (i, j)]
                a, b = vals[i], vals[j]
                cands = [a + b, a - b, a * b] + ([a / b] if b != 0 else [])
                for c in cands:
                    out |= reach(rest + [c])
        return out

    expected = Fraction(target) in reach([Fraction(v) for v in values])
    assert is_solvable(values, target) == expected
    assert bool(solve(values, target)) == expected
