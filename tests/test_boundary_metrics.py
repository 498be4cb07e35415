"""Recovery maths (pure): paired intervals, the ratio, seeds, the window and its edges, the OOD peak."""

import random

import pytest

from raysweep.boundary.metrics import (Diff, clustered_diff, compare_records, over_seeds, paired_diff, ratio,
                                       wilson)
from raysweep.boundary.window import Edge, find_peak, recovery_window


def _pairs(rng, n, p_before, p_after, agree):
    """n hands: before ~ Bernoulli(p_before); after copies before with probability ``agree`` (where that
    keeps the marginal), else is drawn afresh with p_after."""
    before, after = [], []
    for _ in range(n):
        x = rng.random() < p_before
        y = x if (rng.random() < agree and p_after == p_before) else rng.random() < p_after
        before.append(x)
        after.append(y)
    return before, after


def test_paired_interval_holds_its_estimate_and_is_exact_at_the_extremes():
    d = paired_diff([True] * 10 + [False] * 30, [True] * 25 + [False] * 15)
    assert d.value == pytest.approx(15 / 40) and d.low < d.value < d.high and d.n == 40
    assert d.significant_gain and not d.significant_loss
    same = paired_diff([True, False] * 50, [True, False] * 50)
    assert same.value == 0 and same.low < 0 < same.high and same.high - same.low < 0.1
    with pytest.raises(ValueError, match="same problems"):
        paired_diff([True], [True, False])


def test_paired_interval_covers_the_true_difference_95_percent_of_the_time():
    rng = random.Random(0)
    cases = [(0.3, 0.3, 0.9), (0.2, 0.35, 0.0), (0.05, 0.05, 0.5), (0.5, 0.4, 0.0)]
    for p_before, p_after, agree in cases:
        hits = 0
        for _ in range(1000):
            b, a = _pairs(rng, 128, p_before, p_after, agree)
            d = paired_diff(b, a)
            hits += d.low <= p_after - p_before <= d.high
        assert 0.92 <= hits / 1000 <= 0.99, (p_before, p_after, agree, hits)


def test_pairing_narrows_the_interval_when_most_hands_keep_their_verdict():
    before = [True] * 40 + [False] * 88
    after = [True] * 40 + [True] * 10 + [False] * 78  # RL fixed 10 hands and broke none
    d = paired_diff(before, after)
    lo1, hi1 = wilson(40, 128)
    lo2, hi2 = wilson(50, 128)
    unpaired_half = ((hi1 - lo1) ** 2 + (hi2 - lo2) ** 2) ** 0.5 / 2
    assert d.significant_gain and (d.high - d.low) / 2 < unpaired_half


def test_clustered_difference_for_several_samples_per_prompt():
    d = clustered_diff([0.0, 0.25, 0.5, 0.25], [0.5, 0.5, 0.75, 0.25])
    assert d.value == pytest.approx(0.25) and d.low < 0.25 < d.high and d.n == 4
    recs = lambda vs: [{"cards": [str(i)], "verdicts": v} for i, v in enumerate(vs)]  # noqa: E731
    assert compare_records(recs([["correct"], ["malformed"]]), recs([["correct"], ["correct"]])).value == 0.5
    two = compare_records(recs([["correct", "wrong_value"]] * 3), recs([["correct", "correct"]] * 3))
    assert two.value == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same problems"):
        compare_records([{"cards": ["A"], "verdicts": ["correct"]}], [{"cards": ["K"], "verdicts": ["correct"]}])
    with pytest.raises(ValueError, match="same problems"):  # per-hand targets are part of the pairing
        compare_records([{"cards": ["A"], "target": 18, "verdicts": ["correct"]}],
                        [{"cards": ["A"], "target": 20, "verdicts": ["correct"]}])


def test_recovery_ratio_is_defined_only_where_sft_lost_something():
    d = Diff(0.1, 0.04, 0.16, 128)
    assert ratio(d, before=0.2, peak=0.4) == pytest.approx((0.5, 0.2, 0.8))
    assert ratio(d, before=0.4, peak=0.4) is None and ratio(d, before=0.5, peak=0.4) is None


def test_over_seeds_uses_the_spread_but_never_beats_the_within_seed_interval():
    one = Diff(0.1, 0.02, 0.18, 128)
    assert over_seeds([one]) == Diff(0.1, 0.02, 0.18, 1)  # one seed: its own interval; n counts seeds, not hands
    agree = over_seeds([one, one, one])
    assert agree.value == pytest.approx(0.1) and agree.n == 3
    assert agree.low == pytest.approx(0.1 - (3 * 0.08 ** 2) ** 0.5 / 3)  # pooled within-seed half-width
    spread = over_seeds([Diff(-0.1, -0.15, -0.05, 128), Diff(0.1, 0.05, 0.15, 128), Diff(0.3, 0.25, 0.35, 128)])
    assert spread.value == pytest.approx(0.1) and spread.low < -0.3 and spread.high > 0.5  # t(2) = 4.303
    with pytest.raises(ValueError):
        over_seeds([])


GRID = [0, 50, 100, 200, 400, 800, 1200, 1600]


def _curve(gains, half=0.05):
    return {s: Diff(g, g - half, g + half, 128) for s, g in zip(GRID, gains)}


def test_window_edges_are_bracketed_by_the_neighbouring_lengths():
    w = recovery_window(_curve([0, 0.02, 0.04, 0.2, 0.3, 0.1, 0.0, -0.1]))
    assert w.steps == (200, 400, 800) and w.runs == ((200, 400, 800),)
    assert w.lower == Edge(200, 100) and w.lower.bracket == (100, 200)
    assert w.upper == Edge(800, 1200) and w.upper.bracket == (800, 1200)
    assert "from SFT length 200 to 800" in w.describe() and "between 100 and 200" in w.describe()
    # a stricter threshold shrinks it
    assert recovery_window(_curve([0, 0.02, 0.04, 0.2, 0.3, 0.1, 0.0, -0.1]), threshold=0.1).steps == (200, 400)


def test_window_at_the_grid_ends_is_open_and_gaps_are_reported():
    w = recovery_window(_curve([0.2, 0.2, 0.0, 0.0, 0.0, 0.2, 0.2, 0.2]))
    assert w.runs == ((0, 50), (800, 1200, 1600))
    assert w.lower == Edge(800, 400) and w.upper == Edge(1600, None) and not w.upper.closed
    assert w.upper.bracket is None and "grid end" in w.describe() and "2 separate runs" in w.describe()
    first = recovery_window(_curve([0.2, 0.2, 0.0, 0.2, 0.2, 0.0, 0.0, 0.0]))
    assert first.lower == Edge(0, None) and first.upper == Edge(50, 100)  # equal runs: the earliest
    none = recovery_window(_curve([0.0] * 8))
    assert none.empty and none.lower is None and none.describe() == "no SFT length recovers"


def test_peak_and_whether_the_loss_would_have_found_it():
    curve = [(0, 0.10, 0.05, 0.15), (50, 0.30, 0.25, 0.35), (100, 0.30, 0.25, 0.35), (200, 0.12, 0.08, 0.16)]
    falling_loss = {0: 2.0, 50: 0.9, 100: 0.5, 200: 0.3}  # loss keeps improving past the peak
    p = find_peak(curve, falling_loss)
    assert (p.step, p.accuracy, p.loss_step, p.loss_step_accuracy) == (50, 0.30, 200, 0.12)
    assert p.loss_picks_peak is False
    assert find_peak(curve, {0: 2.0, 50: 0.4, 100: 0.5, 200: 0.6}).loss_picks_peak is True
    assert find_peak(curve).loss_picks_peak is None
    with pytest.raises(ValueError):
        find_peak([])


def test_compare_records_within_k_attempts_reads_solved_at():
    from raysweep.boundary.metrics import compare_records

    def recs(solved):
        return [{"problem": f"p{i}", "cards": ["A"], "verdicts": ["correct" if s else "wrong_value"],
                 "solved_at": [s]} for i, s in enumerate(solved)]

    before, after = recs([None, 2, None, 1]), recs([1, 1, 2, 1])
    within_all = compare_records(before, after)  # the headline: within every attempt (the verdicts)
    first = compare_records(before, after, within=1)
    assert within_all.value == pytest.approx(2 / 4)  # solved within the episode: 2 of 4 -> 4 of 4
    assert first.value == pytest.approx(2 / 4)  # at attempt 1: 1 of 4 -> 3 of 4
    assert compare_records(before, after, within=2).value == pytest.approx(2 / 4)
    assert compare_records(recs([2, 2]), recs([1, 1]), within=1).value == pytest.approx(1.0)
    assert compare_records(recs([2, 2]), recs([1, 1])).value == 0.0
