"""Failures by attempt (issue 20's failure decomposition, on the evaluations a sweep already made): for the base,
each SFT length RL started from, and each RL cell's end, the verdicts of attempt k = 1..A among the problems
still unsolved at k (pooled over seeds). It separates what a rule's failures are (a misread card: *wrong cards*;
arithmetic: *wrong value*; a broken answer: *malformed*) and at which attempt they happen, so that a change under
RL can be read as "fixed misreadings" or "kept later attempts well-formed".

    python bench/attempt_failures.py outputs/sweeps/reproduce-cpu [--out bench/results/attempt_failures]

Reads the checkpoints' and RL runs' ``eval.json`` records (no model is loaded); multi-attempt evaluations.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SHOWN = ("correct", "wrong_cards", "train_rule_values", "wrong_value", "malformed")


def by_attempt(records: list[dict]) -> dict[int, Counter]:
    """``{k: Counter(verdict)}`` over the attempts numbered k of every record's episode (pure)."""
    out: dict[int, Counter] = defaultdict(Counter)
    for rec in records:
        episode = (rec.get("attempts") or [None])[0]
        if not episode:
            raise ValueError("a record without attempts: this evaluation is single-attempt (task.attempts = 1)")
        for k, attempt in enumerate(episode, start=1):
            out[k][attempt["verdict"]] += 1
    return dict(out)


def pooled(tables: list[dict[int, Counter]]) -> dict[int, Counter]:
    out: dict[int, Counter] = defaultdict(Counter)
    for t in tables:
        for k, c in t.items():
            out[k].update(c)
    return dict(out)


def within(table: dict[int, Counter]) -> dict:
    """Problems, and the share solved by attempt k for every k (pure)."""
    n = sum(table[1].values())
    done, out = 0, {}
    for k in sorted(table):
        done += table[k]["correct"]
        out[k] = done / n
    return {"problems": n, "within": out}


def rows_of(when: str, rule: str, table: dict[int, Counter]) -> list[dict]:
    """One row per attempt: how many problems reached it and each verdict's share of them (pure)."""
    rows = []
    for k in sorted(table):
        n = sum(table[k].values())
        rows.append({"when": when, "rule": rule, "attempt": k, "reached": n,
                     **{v: table[k][v] / n for v in SHOWN},
                     "other": sum(c for v, c in table[k].items() if v not in SHOWN) / n})
    return rows


def main(argv: list[str] | None = None) -> int:
    from sweep_evals import command_line, write_results

    args, cfg, evaluations = command_line(__doc__, argv)
    sdir = Path(args.sweep)
    rules = list(cfg.task.eval_rules)
    starts = sorted({0, *(cfg.sweep.rl_from or [])})
    groups: dict[tuple[str, str], list] = defaultdict(list)  # (when, rule) -> per-seed tables
    for e in evaluations:
        if e.cell is None and e.step not in starts:
            continue
        when = "base" if e.step == 0 else f"SFT {e.step}" if e.cell is None else f"after RL from SFT {e.step}"
        ev = e.read()
        for r in rules:
            groups[(when, r)].append(by_attempt(ev[r]["records"]))
    order = ["base"] + [f"{w} {s}" for s in starts if s for w in ("SFT", "after RL from SFT")]
    rows, solved = [], []
    for when in order:
        for r in rules:
            tables = groups.get((when, r))
            if tables:
                table = pooled(tables)
                rows += rows_of(when, r, table)
                solved.append({"when": when, "rule": r, **within(table)})
    seeds = len(cfg.sft.seeds)
    lines = [f"# Failures by attempt: `{sdir.name}` ({time.strftime('%Y-%m-%d %H:%M')})", "",
             f"Made by `python bench/attempt_failures.py {' '.join(argv or sys.argv[1:])}`. The evaluation problems "
             f"of every rule, pooled over {seeds} seed(s); attempt k is answered only by the problems unsolved "
             "before it (*reached*). Shares are of those: *wrong cards* a number that is no card's value under the "
             "stated rule (a misread card), *ID values* the hand's ID-rule values under a rule that says otherwise, "
             "*wrong value* the right numbers and a wrong result, *malformed* no formula the verifier can read.", "",
             "| when | rule | attempt | reached | correct | wrong cards | ID values | wrong value | malformed |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['when']} | {r['rule']} | {r['attempt']} | {r['reached']} | {r['correct']:.3f} | "
              f"{r['wrong_cards']:.3f} | {r['train_rule_values']:.3f} | {r['wrong_value']:.3f} | "
              f"{r['malformed']:.3f} |" for r in rows]
    attempts = max((max(x["within"]) for x in solved), default=1)
    lines += ["", "Solved within k attempts (a share of the problems):", "",
              "| when | rule | problems | " + " | ".join(f"within {k}" for k in range(1, attempts + 1)) + " |",
              "|---|---|---:|" + "---:|" * attempts]
    lines += [f"| {x['when']} | {x['rule']} | {x['problems']} | "
              + " | ".join(f"{x['within'].get(k, float('nan')):.3f}" for k in range(1, attempts + 1)) + " |"
              for x in solved]
    text = "\n".join(lines) + "\n"
    write_results(args.out, text, {"by_attempt": rows, "solved": solved})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
