"""Benchmark: the cost of multi-attempt evaluation (``task.attempts``) against one attempt, on real checkpoints.

Only unsolved episodes are generated again, so a 5-attempt evaluation costs 5 single passes only when (almost)
nothing is solved early. For each checkpoint and each attempt count: wall time of ``raysweep.evaluate.evaluate``
(model loaded once, outside the timing), accuracy within k attempts per rule, and the share of prompts that went
on to each attempt.

    python bench/attempts_eval_time.py CONFIG CHECKPOINT [CHECKPOINT ...] [--attempts 1 5] [--n 128]
Results: bench/results/attempts_eval_time.json and .md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from raysweep import models
from raysweep.config import load_config
from raysweep.evaluate import evaluate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--attempts", type=int, nargs="+", default=[1, 5])
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "attempts_eval_time"))
    args = ap.parse_args()
    rows = []
    for ck in args.checkpoints:
        model, tok = models.load(ck, device="cpu")
        for a in args.attempts:
            cfg = load_config(args.config, [f"task.attempts={a}", f"eval.n={args.n}"])
            t0 = time.time()
            res = evaluate(model, tok, cfg.task, cfg.eval, progress=None)
            seconds = time.time() - t0
            for rule, r in res.items():
                went_on = None
                if r.accuracy_at_attempt:
                    went_on = [sum(len(ep) >= k for rec in r.records for ep in rec["attempts"]) / max(1, r.answers)
                               for k in range(1, a + 1)]
                rows.append({"checkpoint": ck, "attempts": a, "rule": rule, "seconds_all_rules": seconds,
                             "accuracy": r.accuracy, "accuracy_at_attempt": r.accuracy_at_attempt, "n": r.n,
                             "share_reaching_attempt": went_on})
    lines = [f"# Multi-attempt evaluation: cost and accuracy within k attempts ({args.n} problems per rule)", "",
             f"Made by `python bench/attempts_eval_time.py {args.config} ...` on this machine.", "",
             "| checkpoint | attempts | rule | eval s (all rules) | accuracy within k = 1..A | share of prompts reaching attempt k |",
             "|---|---:|---|---:|---|---|"]
    for r in rows:
        within = ", ".join(f"{x['accuracy']:.3f}" for x in r["accuracy_at_attempt"]) if r["accuracy_at_attempt"] \
            else f"{r['accuracy']:.3f}"
        reach = ", ".join(f"{x:.2f}" for x in r["share_reaching_attempt"]) if r["share_reaching_attempt"] else "1.00"
        lines.append(f"| {Path(r['checkpoint']).name} | {r['attempts']} | {r['rule']} | {r['seconds_all_rules']:.1f} | "
                     f"{within} | {reach} |")
    Path(args.out + ".json").write_text(json.dumps(rows, indent=1))
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
