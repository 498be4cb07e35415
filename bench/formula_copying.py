"""Design B's measurement (issue 20, mode competition): how often a model's first answer to a held-out problem
copies a formula from its trunk's SFT examples. SFT on a small fixed expert set can install a memorised-formula
mode beside the base's compute-from-the-stated-rule mode; on a held-out problem (other values or another target) a
copied formula is almost always wrong. Per SFT length and after each RL cell: the share of first attempts whose
formula is, as written, one of the trunk's SFT formulas, and how many of those copies were correct.

    python bench/formula_copying.py outputs/sweeps/reproduce-cpu [--out bench/results/formula_copying]

Reads the checkpoints' and RL runs' ``eval.json`` records and re-makes each trunk's SFT examples from its recorded
config (no model is loaded). GeneralPoints sweeps (formulas extracted by the verifier's parser).
"""

from __future__ import annotations

import sys
import time
from functools import lru_cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def first_formulas(records: list[dict]) -> list[tuple[str | None, str]]:
    """(formula as written, verdict) of each record's first attempt (its only one with single attempts)."""
    from raysweep.tasks.answers import extract_formula

    out = []
    for rec in records:
        episode = (rec.get("attempts") or [None])[0]
        first = episode[0] if episode else {"answer": rec["answers"][0], "verdict": rec["verdicts"][0]}
        f = extract_formula(first["answer"])
        out.append((f.replace(" ", "") if f else None, first["verdict"]))
    return out


def copying(records: list[dict], known: frozenset[str]) -> dict:
    """Share of first attempts whose formula is in ``known`` and, of those, how many were correct (pure)."""
    pairs = first_formulas(records)
    copies = [v for f, v in pairs if f is not None and f in known]
    return {"n": len(pairs), "copies": len(copies), "share": len(copies) / max(1, len(pairs)),
            "copies_correct": sum(v == "correct" for v in copies)}


@lru_cache(maxsize=None)
def sft_formulas(tdir: Path, seed: int) -> frozenset[str]:
    from raysweep.config import load_config
    from raysweep.train.sft_data import sft_examples

    rows = sft_examples(load_config(tdir / "config.yaml"), seed)
    return frozenset(f.replace(" ", "") for f in rows["formula"])


def main(argv: list[str] | None = None) -> int:
    from sweep_evals import command_line, write_results

    args, cfg, evaluations = command_line(__doc__, argv)
    sdir = Path(args.sweep)
    rules = list(cfg.task.eval_rules)
    rows: list[dict] = []
    for e in evaluations:
        known = sft_formulas(e.trunk_dir, e.seed)
        ev = e.read()
        rows += [{"seed": e.seed, "when": e.when, "rule": r, "sft_formulas": len(known),
                  **copying(ev[r]["records"], known)} for r in rules if r in ev]
    lines = [f"# Formula copying: `{sdir.name}` ({time.strftime('%Y-%m-%d %H:%M')})", "",
             f"Made by `python bench/formula_copying.py {' '.join(argv or sys.argv[1:])}`. First attempts on the "
             "evaluation problems (held out: none is an SFT problem) whose formula, as written, is one of the "
             "trunk's SFT formulas; *correct*: how many of those copies solved the problem.", "",
             "| seed | when | rule | SFT formulas | first attempts | copies | share | copies correct |",
             "|---:|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['seed']} | {r['when']} | {r['rule']} | {r['sft_formulas']} | {r['n']} | {r['copies']} | "
              f"{r['share']:.3f} | {r['copies_correct']} |" for r in rows]
    text = "\n".join(lines) + "\n"
    write_results(args.out, text, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
