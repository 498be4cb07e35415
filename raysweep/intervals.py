"""95% intervals for accuracies, pure: every n is a count of independent problems.

- One answer per problem: Wilson's score interval over the problems.
- Several answers per problem (sampled answers, or a data file that repeats a problem): answers to one
  problem are not independent, so the accuracy is the mean over problems of each problem's share of
  correct answers, and the interval is Wilson's at the *effective* sample size
  n_eff = p(1 - p) / Var(mean), Var estimated from the spread of the per-problem shares (the design
  effect). It lies between the problems' count and the answers' count, and equals Wilson over problems
  when every problem has one answer.

``bench/interval_coverage.py`` and ``tests/test_intervals.py`` check the coverage of these (and of the
paired intervals of ``raysweep.boundary.metrics``) by simulation.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Hashable, Sequence

Z95 = 1.959963984540054


def wilson(k: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (n may be an effective, non-integer size)."""
    if n <= 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def by_problem(keys: Sequence[Hashable], correct: Sequence[Sequence[bool]]) -> list[list[bool]]:
    """The answers' verdicts gathered per problem (``keys[i]`` is prompt i's problem), first-seen order."""
    groups: dict[Hashable, list[bool]] = defaultdict(list)
    for key, answers in zip(keys, correct, strict=True):
        groups[key].extend(bool(a) for a in answers)
    return list(groups.values())


def clustered_accuracy(per_problem: Sequence[Sequence[bool]], z: float = Z95) -> tuple[float, tuple[float, float], str]:
    """(accuracy, 95% interval, method) over problems, each with one or more answers (see the module)."""
    k = len(per_problem)
    if k == 0:
        return 0.0, (0.0, 1.0), "none"
    if all(len(a) == 1 for a in per_problem):
        hits = sum(bool(a[0]) for a in per_problem)
        return hits / k, wilson(hits, k, z), "wilson"
    shares = [sum(a) / len(a) for a in per_problem]
    p = sum(shares) / k
    answers = sum(len(a) for a in per_problem)
    if k < 2:
        return p, (0.0, 1.0), "wilson-clustered"
    var_mean = sum((s - p) ** 2 for s in shares) / (k - 1) / k
    n_eff = p * (1 - p) / var_mean if var_mean > 0 else float(answers)
    n_eff = min(max(n_eff, float(k)), float(answers))
    return p, wilson(p * n_eff, n_eff, z), "wilson-clustered"
