"""Benchmark: the simulated coverage of raysweep's 95% intervals, with and without clustering.

Each scenario draws ``--reps`` evaluations of ``--problems`` independent problems from a known truth and
counts how often the interval raysweep reports holds the true value:

- ``wilson``: one answer per problem (greedy), accuracy p: Wilson over problems (``raysweep.intervals``).
- ``clustered``: ``--samples`` answers per problem, each problem's own chance drawn from a Beta with mean p
  and intra-problem correlation rho: the design-effect Wilson of ``clustered_accuracy``; beside it the naive
  Wilson over all answers (what treating answers as independent gives).
- ``repeated``: a data file that repeats problems (each problem 1-3 rows) answered greedily (a repeat gets
  the same verdict): ``clustered_accuracy`` over problems against naive Wilson over rows.
- ``paired``: before/after RL on the same problems, one answer each, correlated: Newcombe's paired interval
  (``raysweep.boundary.metrics.paired_diff``).
- ``paired-clustered``: the same with ``--samples`` answers per problem and side: the clustered t interval
  (``clustered_diff``).

    python bench/interval_coverage.py [--reps 2000] [--problems 256] [--samples 4]
Results: bench/results/interval_coverage.json and .md. tests/test_intervals.py runs a subset and requires
93-97% for every raysweep interval.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from raysweep.boundary.metrics import clustered_diff, paired_diff
from raysweep.intervals import clustered_accuracy, wilson


def _beta(rng, mean: float, rho: float, size: int) -> np.ndarray:
    """Per-problem chances with the given mean and intra-problem correlation rho = 1 / (a + b + 1)."""
    s = 1 / rho - 1
    return rng.beta(mean * s, (1 - mean) * s, size)


def wilson_scenario(rng, reps: int, k: int, p: float) -> dict:
    hit = 0
    for _ in range(reps):
        x = rng.random(k) < p
        lo, hi = clustered_accuracy([[bool(v)] for v in x])[1]
        hit += lo <= p <= hi
    return {"scenario": "wilson", "p": p, "problems": k, "coverage": hit / reps}


def clustered_scenario(rng, reps: int, k: int, m: int, p: float, rho: float) -> dict:
    ours = naive = 0
    for _ in range(reps):
        chances = _beta(rng, p, rho, k)
        answers = rng.random((k, m)) < chances[:, None]
        lo, hi = clustered_accuracy(answers.tolist())[1]
        ours += lo <= p <= hi
        nlo, nhi = wilson(int(answers.sum()), k * m)
        naive += nlo <= p <= nhi
    return {"scenario": "clustered", "p": p, "rho": rho, "problems": k, "samples": m,
            "coverage": ours / reps, "naive_coverage": naive / reps}


def repeated_scenario(rng, reps: int, k: int, p: float) -> dict:
    ours = naive = 0
    for _ in range(reps):
        verdict = rng.random(k) < p
        copies = rng.integers(1, 4, k)
        groups = [[bool(v)] * int(c) for v, c in zip(verdict, copies)]
        lo, hi = clustered_accuracy(groups)[1]  # each problem once (its repeats agree): Wilson over problems
        ours += lo <= p <= hi
        rows = int(copies.sum())
        nlo, nhi = wilson(int((verdict * copies).sum()), rows)  # rows as if independent (and row-weighted)
        naive += nlo <= p <= nhi
    return {"scenario": "repeated", "p": p, "problems": k, "coverage": ours / reps, "naive_coverage": naive / reps}


def paired_scenario(rng, reps: int, k: int, p1: float, gain: float, keep: float) -> dict:
    """Before ~ Bernoulli(p1); a problem solved before stays solved with chance ``keep``; unsolved ones flip
    to solved at the rate that makes the after-accuracy p1 + gain."""
    p2 = p1 + gain
    flip = (p2 - p1 * keep) / (1 - p1)
    hit = 0
    for _ in range(reps):
        before = rng.random(k) < p1
        u = rng.random(k)
        after = np.where(before, u < keep, u < flip)
        d = paired_diff(before.tolist(), after.tolist())
        hit += d.low <= gain <= d.high
    return {"scenario": "paired", "p_before": p1, "gain": gain, "keep": keep, "problems": k, "coverage": hit / reps}


def paired_clustered_scenario(rng, reps: int, k: int, m: int, p1: float, lift: float, rho: float) -> dict:
    """Per-problem chance c before (Beta, mean p1, correlation rho), c + lift * (1 - c) after; ``m`` answers per
    side. The true gain is lift * (1 - p1)."""
    gain = lift * (1 - p1)
    hit = 0
    for _ in range(reps):
        c = _beta(rng, p1, rho, k)
        c2 = c + lift * (1 - c)
        b = (rng.random((k, m)) < c[:, None]).mean(axis=1)
        a = (rng.random((k, m)) < c2[:, None]).mean(axis=1)
        d = clustered_diff(b.tolist(), a.tolist())
        hit += d.low <= gain <= d.high
    return {"scenario": "paired-clustered", "p_before": p1, "gain": gain, "rho": rho, "problems": k, "samples": m,
            "coverage": hit / reps}


def run(reps: int, k: int, m: int, seed: int = 0, quick: bool = False) -> list[dict]:
    rng = np.random.default_rng(seed)
    ps = (0.1, 0.5) if quick else (0.05, 0.1, 0.3, 0.5)
    out = [wilson_scenario(rng, reps, k, p) for p in ps]
    out += [clustered_scenario(rng, reps, k, m, p, rho) for p in ps for rho in ((0.5,) if quick else (0.1, 0.5))]
    out += [repeated_scenario(rng, reps, k, p) for p in ((0.3,) if quick else (0.1, 0.3))]
    out += [paired_scenario(rng, reps, k, p1, g, keep) for p1, g, keep in
            (((0.2, 0.05, 0.9),) if quick else ((0.1, 0.0, 0.9), (0.2, 0.05, 0.9), (0.4, 0.1, 0.8), (0.3, -0.05, 0.7)))]
    out += [paired_clustered_scenario(rng, reps, k, m, p1, lift, 0.5) for p1, lift in
            (((0.2, 0.1),) if quick else ((0.1, 0.0), (0.2, 0.1), (0.4, 0.2)))]
    return out


def markdown(rows: list[dict], reps: int, seconds: float) -> str:
    lines = [f"# Simulated coverage of raysweep's 95% intervals ({reps} evaluations per row, {seconds:.0f} s)", "",
             "`coverage`: the share of simulated evaluations whose reported interval holds the truth (nominal 0.95); "
             "`naive`: the interval that treats every answer (or row) as independent.", "",
             "| scenario | setting | problems | coverage | naive |", "|---|---|---|---|---|"]
    for r in rows:
        setting = ", ".join(f"{k}={r[k]:g}" for k in ("p", "p_before", "gain", "keep", "rho", "samples") if k in r)
        naive = f"{r['naive_coverage']:.3f}" if "naive_coverage" in r else ""
        lines.append(f"| {r['scenario']} | {setting} | {r['problems']} | {r['coverage']:.3f} | {naive} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=2000, help="simulated evaluations per scenario")
    ap.add_argument("--problems", type=int, default=256, help="independent problems per evaluation")
    ap.add_argument("--samples", type=int, default=4, help="answers per problem in the clustered scenarios")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "interval_coverage"))
    args = ap.parse_args()
    t0 = time.time()
    rows = run(args.reps, args.problems, args.samples)
    seconds = time.time() - t0
    Path(args.out + ".json").write_text(json.dumps({"reps": args.reps, "seconds": seconds, "rows": rows}, indent=1))
    Path(args.out + ".md").write_text(markdown(rows, args.reps, seconds))
    print(markdown(rows, args.reps, seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
