"""How a trunk reads the OOD rule: for each SFT length, the value its answers write for each card the rule
changes (from the compact answer's ``Numbers:`` line), and the verdicts split by which of those cards a hand
holds. Reads only the checkpoints' ``eval.json``; no model is loaded.

    python bench/ood_reading.py outputs/sweeps/reproduce-cpu [--rule ood] [--out bench/results/ood_reading.md]

The ANALOGUE's base (``jobs/reproduce-cpu.yaml``) reads the tied ID phrasing ("count as '10'") but writes the
*last* value of the OOD phrasing ("'11', '12', and '13' respectively") for every face card, so only hands whose
only face card is a K can be solved under the OOD rule: this is where that was measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def numbers_line(answer: str) -> list[str]:
    """The values an answer says the cards have (``Numbers: 1, 8, 13`` or ``Numbers: A=1, 8=8, K=13``), as
    written; [] if absent."""
    for line in answer.splitlines():
        if line.strip().lower().startswith("numbers:"):
            # compact: "Numbers: 13, 9"; paired: "Numbers: K=13, 9=9" (the value after each card)
            return [x.split("=")[-1].strip() for x in line.split(":", 1)[1].split(",") if x.strip()]
    return []


def reading(records: list[dict], ranks: tuple[str, ...]) -> tuple[dict[str, Counter], dict[str, Counter]]:
    """({rank: Counter(value written)}, {set of changed ranks held: Counter(verdict)}) over the records."""
    written: dict[str, Counter] = {r: Counter() for r in ranks}
    verdicts: dict[str, Counter] = {}
    for rec in records:
        nums = numbers_line(rec["answers"][0])
        for card, value in zip(rec["cards"], nums):
            if card in written:
                written[card][value] += 1
        held = "".join(r for r in ranks if r in rec["cards"]) or "-"
        verdicts.setdefault(held, Counter())[rec["verdicts"][0]] += 1
    return written, verdicts


def trunk_table(tdir: Path, rule: str, ranks: tuple[str, ...], values: dict[str, int]) -> list[str]:
    from raysweep.train import trunk as T

    lines = [f"### {tdir.parent.name}/{tdir.name}", "",
             "| SFT length | value written for " + ", ".join(f"{r} (rule: {values[r]})" for r in ranks) +
             " | verdicts by the changed cards a hand holds |", "|---:|---|---|"]
    for step in sorted(T.finished_steps(tdir)):
        f = T.checkpoint_dir(tdir, step) / "eval.json"
        ev = json.loads(f.read_text()).get(rule) if f.is_file() else None
        if not ev:
            continue
        written, verdicts = reading(ev["records"], ranks)
        w = "; ".join(f"{r}: " + ", ".join(f"{v}×{n}" for v, n in c.most_common(3)) for r, c in written.items())
        v = "; ".join(f"{held}: " + ", ".join(f"{k} {n}" for k, n in sorted(c.items()))
                      for held, c in sorted(verdicts.items()))
        lines.append(f"| {step} | {w} | {v} |")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    from raysweep.config import load_config
    from raysweep.sweep.plan import Cell, lineage

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep", help="a sweep directory (its config.yaml names the trunks)")
    p.add_argument("--rule", default=None, help="the rule to read (default: the last of task.eval_rules)")
    p.add_argument("--out", default="bench/results/ood_reading.md")
    args = p.parse_args(argv)
    sdir = Path(args.sweep)
    cfg = load_config(sdir / "config.yaml")
    rule_name = args.rule or cfg.task.eval_rules[-1]
    rule = cfg.task.rule(rule_name)
    ranks = cfg.task.distinguishing_ranks(rule)
    if cfg.task.answer_format != "compact":
        print("this reads the compact answer's 'Numbers:' line; task.answer_format is not compact", file=sys.stderr)
        return 2
    lines = [f"# How the trunks of `{sdir.name}` read the rule `{rule_name}`", "",
             f"Made by `python bench/ood_reading.py {args.sweep}`; {cfg.eval.n} evaluation problems per checkpoint, "
             "greedy answers. *Value written*: the value the answer's `Numbers:` line gives each card the rule "
             "changes (most common three; ×n: on n such cards of the evaluation hands).", ""]
    for seed in cfg.sft.seeds:
        tdir = Path(lineage(cfg, Cell(seed, cfg.sft.checkpoints[0]))["trunk_dir"])
        lines += trunk_table(tdir, rule_name, ranks, {r: rule.value(r) for r in ranks})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
