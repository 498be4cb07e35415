"""Recovery metrics, pure: what RL did to accuracy relative to where it started, with 95% intervals.

Every evaluation of a sweep uses the same fixed problems per rule (same task and eval settings), so the
accuracy before RL (the SFT checkpoint) and after RL are *paired* by problem. With one answer per problem
the interval of their difference uses that pairing (Newcombe's hybrid score interval for paired
proportions, method 10 of Newcombe 1998), much tighter than treating the two as independent samples when
most problems keep their verdict. Where a problem has several answers (sampling, or a problem repeated in
the data), the answers are clustered by problem: the interval is a t interval of the mean per-problem
difference of accuracies. ``n`` is always the number of problems (or of seeds, aggregated).

- ``recovery`` (per cell and rule): after − before, with its paired interval.
- ``recovery ratio``: (after − before) / (peak − before), where ``peak`` is the trunk's best accuracy
  at any evaluated SFT length (the OOD peak the paper measures against). Defined only where SFT lost
  something (peak − before > 0): 1 means RL brought accuracy back to the peak, 0 no recovery, negative
  that RL made it worse.
- Over seeds: the mean difference, with an interval from the seeds' spread (t, k−1 degrees of freedom)
  that is never narrower than the pooled within-seed (paired) interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Hashable, Sequence

from raysweep.intervals import Z95, wilson
# two-sided 95% Student t quantiles by degrees of freedom (1..30); beyond, the normal's
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042]


def t95(df: int) -> float:
    return _T95[df - 1] if 1 <= df <= len(_T95) else Z95


@dataclass(frozen=True)
class Diff:
    """A difference of accuracies (after − before) with its 95% interval."""

    value: float
    low: float
    high: float
    n: int  # problems (paired) or seeds (aggregated)

    @property
    def significant_gain(self) -> bool:
        return self.low > 0

    @property
    def significant_loss(self) -> bool:
        return self.high < 0


def paired_diff(before: Sequence[bool], after: Sequence[bool], z: float = Z95) -> Diff:
    """after − before accuracy over the same problems (one answer each), with Newcombe's paired score interval (method 10)."""
    if len(before) != len(after):
        raise ValueError(f"paired evaluations must cover the same problems: {len(before)} vs {len(after)}")
    n = len(before)
    if n == 0:
        return Diff(0.0, -1.0, 1.0, 0)
    a = sum(1 for x, y in zip(before, after) if x and y)
    b = sum(1 for x, y in zip(before, after) if x and not y)  # lost by RL
    c = sum(1 for x, y in zip(before, after) if not x and y)  # gained by RL
    d = n - a - b - c
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n, z)
    l2, u2 = wilson(a + c, n, z)
    denom = (a + b) * (c + d) * (a + c) * (b + d)
    # Newcombe's corrected phi: without it, no discordant hands (b = c = 0) would give a zero-width interval
    num = a * d - b * c
    num = num - n / 2 if num > n / 2 else (0.0 if num >= 0 else num)
    phi = num / math.sqrt(denom) if denom > 0 else 0.0
    diff = p2 - p1
    dl = (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2
    du = (u2 - p2) ** 2 - 2 * phi * (u2 - p2) * (p1 - l1) + (p1 - l1) ** 2
    return Diff(diff, max(-1.0, diff - math.sqrt(max(dl, 0.0))), min(1.0, diff + math.sqrt(max(du, 0.0))), n)


def clustered_diff(before: Sequence[float], after: Sequence[float]) -> Diff:
    """after − before over the same problems when a problem has several answers (clustered by problem): a
    t interval (k − 1 degrees of freedom) of the mean per-problem difference of accuracies."""
    if len(before) != len(after):
        raise ValueError(f"paired evaluations must cover the same problems: {len(before)} vs {len(after)}")
    m = len(before)
    if m < 2:
        return Diff(0.0 if m == 0 else after[0] - before[0], -1.0, 1.0, m)
    ds = [y - x for x, y in zip(before, after)]
    mean = sum(ds) / m
    sd = math.sqrt(sum((v - mean) ** 2 for v in ds) / (m - 1))
    half = t95(m - 1) * sd / math.sqrt(m)
    return Diff(mean, max(-1.0, mean - half), min(1.0, mean + half), m)


def ratio(diff: Diff, before: float, peak: float) -> tuple[float, float, float] | None:
    """The recovery ratio (value, low, high) = diff / (peak − before); None where SFT lost nothing
    (``peak <= before``). The peak is taken as fixed: the interval is the difference's, rescaled."""
    lost = peak - before
    if lost <= 1e-12:
        return None
    return diff.value / lost, diff.low / lost, diff.high / lost


def over_seeds(diffs: Sequence[Diff]) -> Diff:
    """Mean of per-seed differences. Interval: mean ± t(k−1)·sd/√k over seeds, widened where needed to
    at least the pooled within-seed interval (half-width √(Σ h_i²)/k); one seed: its own interval. The
    result's ``n`` is the number of seeds (a one-seed result too: its problems are not seeds)."""
    k = len(diffs)
    if k == 0:
        raise ValueError("no seeds to aggregate")
    if k == 1:
        return Diff(diffs[0].value, diffs[0].low, diffs[0].high, 1)
    mean = sum(d.value for d in diffs) / k
    sd = math.sqrt(sum((d.value - mean) ** 2 for d in diffs) / (k - 1))
    between = t95(k - 1) * sd / math.sqrt(k)
    within_low = math.sqrt(sum((d.value - d.low) ** 2 for d in diffs)) / k
    within_high = math.sqrt(sum((d.high - d.value) ** 2 for d in diffs)) / k
    return Diff(mean, max(-1.0, mean - max(between, within_low)), min(1.0, mean + max(between, within_high)), k)


def record_key(record: dict) -> Hashable:
    """The problem an evaluation record poses (records made before problems were named: its cards and target)."""
    return record.get("problem") or (tuple(record["cards"]), record.get("target"))


def problem_answers(records: Sequence[dict], within: int | None = None) -> dict[Hashable, list[bool]]:
    """Each problem's answers (correct or not), gathered over the records that pose it, in first-seen order.
    ``within``: correct within that many attempts (multi-attempt records' ``solved_at``; records of one attempt
    count as they are)."""
    out: dict[Hashable, list[bool]] = {}
    for r in records:
        if within is not None and "solved_at" in r:
            got = [s is not None and s <= within for s in r["solved_at"]]
        else:
            got = [v == "correct" for v in r["verdicts"]]
        out.setdefault(record_key(r), []).extend(got)
    return out


def compare_records(before: Sequence[dict], after: Sequence[dict], within: int | None = None) -> Diff:
    """The paired difference between two evaluations' records of one rule, paired by problem: Newcombe's
    paired interval when every problem has one answer on each side, else clustered by problem. ``within``:
    accuracy within that many attempts (default: the records' headline, within every attempt)."""
    b, a = problem_answers(before, within), problem_answers(after, within)
    if set(b) != set(a):
        raise ValueError("the two evaluations are not over the same problems (task or eval settings differ)")
    keys = list(b)
    if all(len(b[k]) == 1 and len(a[k]) == 1 for k in keys):
        return paired_diff([b[k][0] for k in keys], [a[k][0] for k in keys])
    return clustered_diff([sum(b[k]) / len(b[k]) for k in keys], [sum(a[k]) / len(a[k]) for k in keys])
