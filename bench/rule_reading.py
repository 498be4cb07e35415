"""Does a model read a stated face-card rule, card by card? For each rule given (the ID and OOD rules, and rules
whose values are permuted or random), greedy answers to hands holding face cards, and per face rank the share of
its ``Numbers:`` entries that equal the value the prompt states (compact or paired answer format). No evaluation
set and no verifier: only the reading step, which every OOD answer needs first.

    python bench/rule_reading.py MODEL [CONFIG] [--n 96] [--out bench/results/rule_reading.md] [k=v ...]

MODEL is a model spec or directory (a trunk checkpoint, a shipped base); CONFIG (default jobs/reproduce-cpu.yaml)
gives the task's prompt style, answer format and target (the first of task.targets, if set). The CPU analogue's
bases were diagnosed with it (docs/reproduce-cpu/README.md, rows P1-P7 and B1): a base that writes one value for every face card under the OOD
phrasing ("'11', '12', and '13' respectively") cannot be right on most OOD hands, whatever SFT does.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # ood_reading.numbers_line

RULES: dict[str, dict[str, int]] = {
    "id (10, 10, 10)": {"J": 10, "Q": 10, "K": 10},
    "ood (11, 12, 13)": {"J": 11, "Q": 12, "K": 13},
    "ood permuted (12, 13, 11)": {"J": 12, "Q": 13, "K": 11},
    "ood permuted (13, 11, 12)": {"J": 13, "Q": 11, "K": 12},
    "tied (7, 7, 7)": {"J": 7, "Q": 7, "K": 7},
    "each (3, 7, 5)": {"J": 3, "Q": 7, "K": 5},
    "each (9, 2, 6)": {"J": 9, "Q": 2, "K": 6},
}


def hands(n: int, seed: int = 0) -> list[tuple[str, ...]]:
    """``n`` three-card hands, each with at least one face card (ranks and order seeded)."""
    from raysweep.tasks.generalpoints import FACE_RANKS, RANKS

    rng = random.Random(f"rule-reading:{seed}")
    out = []
    while len(out) < n:
        h = tuple(rng.choice(RANKS) for _ in range(3))
        if set(FACE_RANKS) & set(h):
            out.append(h)
    return out


def reading_shares(answers: list[str], hands_: list[tuple[str, ...]], face: dict[str, int]) -> dict[str, dict]:
    """Per face rank: how often its written value equals the stated one, and what was written most."""
    from collections import Counter

    from ood_reading import numbers_line

    written = {r: Counter() for r in face}
    for answer, hand in zip(answers, hands_, strict=True):
        for card, value in zip(hand, numbers_line(answer)):
            if card in written:
                written[card][value] += 1
    return {r: {"n": sum(c.values()), "right": c[str(face[r])] / max(1, sum(c.values())),
                "most": c.most_common(2)} for r, c in written.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("config", nargs="?", default="jobs/reproduce-cpu.yaml")
    ap.add_argument("--n", type=int, default=96, help="hands per rule")
    ap.add_argument("--out", help="write a markdown table here (and the numbers as .json beside it)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)

    from raysweep import models
    from raysweep.config import load_config
    from raysweep.evaluate import generate
    from raysweep.tasks.generalpoints import Rule, _rule_values, prompt_messages

    cfg = load_config(args.config, args.overrides)
    model, tok = models.load(args.model, device=cfg.model.device)
    hs = hands(args.n)
    target = cfg.task.target if cfg.task.targets is None else cfg.task.targets[0]
    greedy = cfg.eval.model_copy(update={"temperature": 0.0, "samples": 1})
    results = {}
    for name, face in RULES.items():
        rule = Rule(name="probe", values=_rule_values(face))
        answers, _ = generate(model, tok, [prompt_messages(h, rule, cfg.task, target) for h in hs], greedy,
                              max_new_tokens=48, progress=None)
        results[name] = reading_shares([a[0] for a in answers], hs, face)
        print(f"{name:28s} " + "  ".join(f"{r} {v['right']:.2f} (n={v['n']})" for r, v in results[name].items()),
              flush=True)
    if args.out:
        lines = [f"# Rule reading: `{args.model}`", "",
                 f"Greedy answers to {args.n} three-card hands with face cards per rule ({cfg.task.answer_format} "
                 f"format, {cfg.task.prompt_style} prompts); share of each face card's written value equal to the "
                 "stated one (`python bench/rule_reading.py " + " ".join(sys.argv[1:]) + "`).", "",
                 "| rule | J | Q | K | most written (J / Q / K) |", "|---|---:|---:|---:|---|"]
        for name, per in results.items():
            most = " / ".join(",".join(f"{v}×{c}" for v, c in per[r]["most"]) for r in "JQK")
            lines.append(f"| {name} | " + " | ".join(f"{per[r]['right']:.2f}" for r in "JQK") + f" | {most} |")
        Path(args.out).write_text("\n".join(lines) + "\n")
        Path(args.out).with_suffix(".json").write_text(json.dumps({"model": args.model, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
