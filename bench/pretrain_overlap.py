"""How much of a sweep's training data its pre-training already computed with: the share of SFT examples and RL
prompts whose problem (the card values under the training rule, and the target) some pre-training example posed,
against the evaluation sets (which must be 0: held out means held out). A problem the base has seen many times is
answered from memory, so an RL pool made of them trains recall, not the computation the held-out sets measure.

    python bench/pretrain_overlap.py jobs/reproduce-cpu.yaml [--stage CONFIG ...] [--out bench/results/pretrain_overlap]

The stages: the config's own ``pretrain`` stage, the stage an exported base (``model.name``) recorded in its
``config.yaml`` and the stages its manifest lists before it, and every ``--stage CONFIG`` (for a base exported
before manifests listed them: ``jobs/analogue-stage1.yaml`` behind ``analogue-base``).
GeneralPoints configs only (their problems are card values and a target). Pure dataset building: no model is
loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    from raysweep.config import load_config
    from raysweep.tasks.datasets import eval_dataset, rl_dataset, sft_dataset
    from raysweep.tasks.generalpoints import problem_of
    from raysweep.train.pretrain import pretraining_stages, stage_problems
    from raysweep.train.rl_prompts import rl_prompts

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("--stage", action="append", default=[], help="a further pre-training stage's config (repeatable)")
    ap.add_argument("--out", help="write <out>.md and <out>.json")
    args = ap.parse_args(argv)

    cfg = load_config(args.config)
    task = cfg.task
    seen: set = set()
    stage_rows = []
    for name, st in pretraining_stages(cfg, tuple(args.stage)):
        probs = stage_problems(st)
        stage_rows.append({"stage": f"{args.config} ({name})" if name == "pretrain" else name,
                           "examples": len(probs), "problems": len(set(probs))})
        seen |= set(probs)
    rule = task.rule(task.train_rule)

    def share(rows) -> dict:
        keys = [problem_of(c, rule, t) for c, t in zip(rows["cards"], rows["target"])]
        return {"rows": len(keys), "distinct": len(set(keys)), "distinct_pretrained": len(set(keys) & seen),
                "rows_pretrained": sum(k in seen for k in keys) / len(keys)}

    from raysweep.tasks.protocol import task_of

    T = task_of(task)
    pool = rl_dataset(task, cfg.rl.num_prompts, cfg.rl.seed)
    parts = {f"RL prompts (rl.prompts=pool), seed {cfg.rl.seed}": share(pool)}
    for s in cfg.sft.seeds:
        sft = sft_dataset(task, cfg.sft.num_examples, s)
        parts[f"SFT examples, seed {s}"] = share(sft)
        sft_keys = {T.key(r) for r in sft.to_list()}
        parts[f"RL prompts (rl.prompts=unseen after SFT seed {s})"] = share(
            rl_prompts(T, cfg.rl.num_prompts, cfg.rl.seed, sft_keys))
    for r in task.eval_rules:  # the ID-rule twin of each evaluation problem
        parts[f"evaluation set {r} (its ID-rule twins)"] = share(eval_dataset(task, r, cfg.eval.n, cfg.eval.seed))

    lines = [f"# Pre-training overlap: {args.config} ({time.strftime('%Y-%m-%d %H:%M')})", "",
             f"Made by `python bench/pretrain_overlap.py {' '.join(argv or sys.argv[1:])}`. A problem: the card "
             "values under the training rule, and the target.", "",
             "| pre-training stage | examples | distinct problems |", "|---|---:|---:|"]
    lines += [f"| {r['stage']} | {r['examples']:,} | {r['problems']:,} |" for r in stage_rows]
    lines += ["", f"All stages: {len(seen):,} distinct problems.", "",
              "| data | rows | distinct problems | of them pre-trained | rows pre-trained |",
              "|---|---:|---:|---:|---:|"]
    lines += [f"| {k} | {v['rows']:,} | {v['distinct']:,} | {v['distinct_pretrained']:,} | {v['rows_pretrained']:.1%} |"
              for k, v in parts.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out + ".md").write_text(text)
        Path(args.out + ".json").write_text(json.dumps({"stages": stage_rows, "pretrained_problems": len(seen),
                                                        "parts": parts}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
