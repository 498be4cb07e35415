"""Intervals that match the data: n counts problems, answers cluster by problem, pairs pair by problem; and
their coverage by simulation (bench/interval_coverage.py)."""

import importlib.util
from pathlib import Path

import pytest

from raysweep.boundary.metrics import compare_records, paired_diff
from raysweep.evaluate import summarise
from raysweep.intervals import by_problem, clustered_accuracy, wilson

spec = importlib.util.spec_from_file_location("interval_coverage",
                                              Path(__file__).parents[1] / "bench" / "interval_coverage.py")
coverage = importlib.util.module_from_spec(spec)
spec.loader.exec_module(coverage)


def test_one_answer_per_problem_is_wilson_and_repeats_of_a_problem_count_once():
    single = [[True]] * 30 + [[False]] * 70
    acc, ci, method = clustered_accuracy(single)
    assert acc == 0.3 and ci == wilson(30, 100) and method == "wilson"
    # a data file repeating every problem three times (greedy: the repeats agree) is still 100 problems
    keys = [i for i in range(100) for _ in range(3)]
    rows = [[i < 30] for i in range(100) for _ in range(3)]
    groups = by_problem(keys, rows)
    assert len(groups) == 100
    acc3, ci3, _ = clustered_accuracy(groups)
    assert acc3 == pytest.approx(0.3) and ci3 == pytest.approx(wilson(30, 100))  # not Wilson over 300 rows
    assert ci3[1] - ci3[0] > wilson(90, 300)[1] - wilson(90, 300)[0]


def test_sampled_answers_give_an_interval_between_the_problems_and_the_answers_counts():
    # 50 problems x 4 samples; half the problems always right, a quarter half right: strongly clustered
    per = [[True] * 4] * 25 + [[True, False] * 2] * 12 + [[False] * 4] * 13
    acc, (lo, hi), method = clustered_accuracy(per)
    assert method == "wilson-clustered" and acc == pytest.approx((25 + 6) / 50)
    w_problems, w_answers = wilson(acc * 50, 50), wilson(acc * 200, 200)
    assert w_answers[1] - w_answers[0] < hi - lo <= w_problems[1] - w_problems[0] + 1e-12
    r = summarise("ood", [["a"] * 4] * 50, [["correct" if x else "wrong_value" for x in a] for a in per])
    assert r.n == 50 and r.answers == 200 and r.ci_method == "wilson-clustered" and r.accuracy == pytest.approx(acc)
    assert r.pass_at_k == pytest.approx(37 / 50) and r.verdicts["correct"] == 25 * 4 + 12 * 2


def test_paired_comparisons_pair_by_problem_and_cluster_repeats():
    before = [{"problem": f"p{i}", "cards": ["A"], "verdicts": ["correct" if i < 20 else "wrong_value"]} for i in range(100)]
    after = [{"problem": f"p{i}", "cards": ["A"], "verdicts": ["correct" if i < 30 else "wrong_value"]} for i in range(100)]
    d = compare_records(before, list(reversed(after)))  # paired by problem, not by position
    assert d == paired_diff([i < 20 for i in range(100)], [i < 30 for i in range(100)]) and d.n == 100
    # every problem twice (rows of a data file): still 100 problems, clustered
    dd = compare_records(before + before, after + after)
    assert dd.n == 100 and dd.value == pytest.approx(0.10)
    with pytest.raises(ValueError, match="same problems"):
        compare_records(before, after[:-1])


def test_simulated_coverage_is_near_nominal():
    """2,000 simulated evaluations of 256 problems per scenario: every raysweep interval within 93-97%; the naive
    intervals that count answers (or rows) as independent fall short. (The bench's full run also shows Newcombe's
    paired interval conservative, ~99%, where almost no problem changes verdict.)"""
    rows = coverage.run(reps=2000, k=256, m=4, seed=0, quick=True)
    assert {r["scenario"] for r in rows} == {"wilson", "clustered", "repeated", "paired", "paired-clustered"}
    for r in rows:
        assert 0.93 <= r["coverage"] <= 0.97, r
        if "naive_coverage" in r:
            assert r["naive_coverage"] < 0.93, r
