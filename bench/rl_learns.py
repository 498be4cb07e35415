"""Benchmark: does RL learn here? GRPO from a pre-trained analogue trunk, measured on problems it never trained on.

From one SFT checkpoint of a config's trunk (trained first if missing, through `raysweep sft`'s own path), one
RL run through `raysweep rl`'s path (Ray Train, TRL GRPOTrainer, the config's rl section with raysweep's
defaults for what it leaves out), then, on the starting checkpoint and the trained policy:

- sampled accuracy (pass@1, ``--samples`` answers per problem at the rollout temperature, clustered by problem) on
  *fresh training-pool problems*: training-rule problems from the training pool that are neither SFT examples of
  the trunk nor RL prompts of the run;
- sampled pass@1 on the same number of the RL prompt pool's own problems (what RL trains on: learning that
  does not transfer shows as a gain here and none above);
- greedy accuracy on the held-out ID (and OOD) evaluation problems, the sweep's own sets.

Each gain is paired by problem with a 95% interval (raysweep.boundary.metrics.compare_records). The RL run's
reward and its share of correct rollouts per step are the learning curve.

    python bench/rl_learns.py [CONFIG] [--sft-step 20] [--seed 0] [--fresh 256] [--samples 4] [key=value ...]
e.g.  python bench/rl_learns.py jobs/reproduce-cpu.yaml --sft-step 20 rl.max_steps=150 rl.learning_rate=1e-4
Results: bench/results/rl_learns.json and .md (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from raysweep.boundary.metrics import compare_records
from raysweep.config import load_config


def fresh_problems(cfg, n: int, seed: int):
    """``n`` distinct training-rule problems of the training pool that are neither this trunk's SFT examples
    nor the RL run's prompts (dealt from a stream of their own), as an evaluation-shaped dataset."""
    from datasets import Dataset

    from raysweep.tasks.datasets import _rows, _under, rl_dataset, sft_dataset
    from raysweep.tasks.generalpoints import deal_targets, problem_of

    task = cfg.task
    rule = task.rule(task.train_rule)
    used = {problem_of(c, rule, t) for ds in (sft_dataset(task, cfg.sft.num_examples, seed),
                                             rl_dataset(task, cfg.rl.num_prompts, cfg.rl.seed))
            for c, t in zip(ds["cards"], ds["target"])}
    pairs, seen = [], set(used)
    for hand, target in deal_targets(task, task.train_rule, 50 * n, 10_000 + seed, "rl"):
        p = problem_of(hand, rule, target)
        if p not in seen:
            seen.add(p)
            pairs.append((hand, target))
            if len(pairs) == n:
                break
    if len(pairs) < n:
        raise SystemExit(f"only {len(pairs)} fresh training-pool problems (asked for {n}): lower --fresh")
    return Dataset.from_dict(_rows(task, _under(task, task.train_rule, pairs), None, with_completion=True))


def pool_problems(cfg, n: int):
    """``n`` distinct problems of the RL run's own prompt pool (the problems RL trains on), evaluation-shaped."""
    from datasets import Dataset

    from raysweep.tasks.datasets import _rows, _under, rl_dataset
    from raysweep.tasks.generalpoints import problem_of

    task = cfg.task
    rule = task.rule(task.train_rule)
    ds = rl_dataset(task, cfg.rl.num_prompts, cfg.rl.seed)
    pairs, seen = [], set()
    for c, t in zip(ds["cards"], ds["target"]):
        p = problem_of(c, rule, t)
        if p not in seen and len(pairs) < n:
            seen.add(p)
            pairs.append((tuple(c), t))
    return Dataset.from_dict(_rows(task, _under(task, task.train_rule, pairs), None, with_completion=True))


def measure(path: str, cfg, sets: dict, samples: int) -> dict:
    """Sampled pass@1 on each of ``sets`` ({name: dataset}) and greedy held-out ID/OOD of the model at ``path``:
    {name: {summary, records}}."""
    import torch

    from raysweep import models
    from raysweep.evaluate import evaluate, evaluate_rule

    model, tok = models.load(path, device="cpu")
    model.eval()
    out = {name: {"summary": r.summary(), "records": r.records}
           for name, r in evaluate(model, tok, cfg.task, cfg.eval, progress=None).items()}
    sampled = cfg.eval.model_copy(update={"samples": samples, "temperature": cfg.rl.temperature, "top_p": cfg.rl.top_p})
    for name, ds in sets.items():
        torch.manual_seed(0)
        r = evaluate_rule(model, tok, cfg.task, cfg.task.train_rule, sampled, progress=None, ds=ds, name=name)
        out[name] = {"summary": r.summary(), "records": r.records}
    return out


def _curve(rdir: Path) -> list[dict]:
    from raysweep.train import trunk as T

    keep = ("reward", "verdict/correct", "frac_reward_zero_std", "kl", "completions/mean_length", "mean_step_seconds")
    return [{"step": r["step"], **{k: r[k] for k in keep if k in r}} for r in T.read_results(rdir)
            if r.get("kind") == "train"]


def markdown(res: dict) -> str:
    lines = [f"# Does RL learn here? GRPO from `{res['start']}`", "",
             f"Config `{res['config']}` with {res['overrides'] or 'no overrides'}; {res['rl']['max_steps']} GRPO steps x "
             f"{res['rl']['batch_size']} prompts x {res['rl']['num_generations']} completions, lr "
             f"{res['rl']['learning_rate']:g}, beta {res['rl']['beta']:g}, scale_rewards {res['rl']['scale_rewards']}, "
             f"loss {res['rl']['loss_type']}, reward {res['reward']}; RL training took {res['rl_seconds']:.0f} s "
             f"(this invocation {res['total_seconds']:.0f} s in all).", "",
             "| measure | n problems | before | after | gain [95% paired interval] |", "|---|---:|---:|---:|---|"]
    for name, g in res["gains"].items():
        lines.append(f"| {g['label']} | {g['n']} | {g['before']:.3f} | {g['after']:.3f} | "
                     f"{g['gain']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]{' **significant**' if g['low'] > 0 else ''} |")
    curve = [r for r in res["curve"] if "verdict/correct" in r]
    if len(curve) >= 30:
        k = max(1, len(curve) // 10)
        first = sum(r["verdict/correct"] for r in curve[:k]) / k
        last = sum(r["verdict/correct"] for r in curve[-k:]) / k
        lines += ["", f"Share of sampled training rollouts correct: {first:.3f} over the first {k} steps, {last:.3f} over "
                      f"the last {k} ({k * res['rl']['batch_size'] * res['rl']['num_generations']} rollouts each; "
                      "the prompts are training-pool problems, many of them SFT's own)."]
    lines += ["", "Learning curve (training rollouts; every 10th step):", "",
              "| step | reward | share correct | groups without reward variance | KL |", "|---:|---:|---:|---:|---:|"]
    for r in res["curve"]:
        if r["step"] % 10 == 0 or r["step"] == 1:
            lines.append(f"| {r['step']} | {r.get('reward', float('nan')):.3f} | {r.get('verdict/correct', float('nan')):.3f} "
                         f"| {r.get('frac_reward_zero_std', float('nan')):.3f} | {r.get('kl', float('nan')):.4f} |")
    return "\n".join(lines) + "\n"


LABELS = {"fresh": "sampled pass@1, fresh training-pool problems", "pool": "sampled pass@1, the RL prompts' own problems",
          "id": "greedy, held-out ID", "ood": "greedy, held-out OOD"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", nargs="?", default="jobs/reproduce-cpu.yaml")
    ap.add_argument("overrides", nargs="*", help="key=value config overrides (e.g. rl.max_steps=150)")
    ap.add_argument("--sft-step", type=int, default=20, help="the SFT length RL starts from")
    ap.add_argument("--seed", type=int, default=0, help="the trunk's seed")
    ap.add_argument("--fresh", type=int, default=100,
                    help="fresh training-pool problems to measure on (and as many of the RL pool's own)")
    ap.add_argument("--samples", type=int, default=4, help="sampled answers per fresh problem")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "rl_learns"))
    args = ap.parse_intermixed_args()
    t0 = time.time()
    base = load_config(args.config, args.overrides)
    lengths = sorted({0, *[s for s in base.sft.checkpoints if s <= args.sft_step], args.sft_step})
    cfg = load_config(args.config, [*args.overrides, f"sft.seeds=[{args.seed}]", f"sft.checkpoints={lengths}",
                                    f"rl.sft_step={args.sft_step}", f"rl.sft_seed={args.seed}", "rl.grid={}",
                                    "sweep.rl_from=null"])
    from raysweep.train import trunk as T
    from raysweep.train.rl import run_rl
    from raysweep.train.sft import config_trunk_dir, run_sft

    run_sft(cfg)  # found if finished (the sweep's own trunk: lengths do not change its id)
    start = str(T.checkpoint_dir(config_trunk_dir(cfg, args.seed), args.sft_step))
    sets = {"fresh": fresh_problems(cfg, args.fresh, args.seed), "pool": pool_problems(cfg, args.fresh)}
    print(f"[rl_learns] measuring the start {start}", file=sys.stderr)
    before = measure(start, cfg, sets, args.samples)
    rdir = run_rl(cfg)
    done = [r for r in T.read_results(rdir) if r.get("kind") == "done"]
    rl_seconds = done[-1]["train_seconds"] if done else float("nan")  # as measured when it trained
    after = measure(str(rdir / "final"), cfg, sets, args.samples)
    gains = {}
    for name in before:
        d = compare_records(before[name]["records"], after[name]["records"])
        gains[name] = {"label": LABELS.get(name, name), "n": d.n, "before": before[name]["summary"]["accuracy"],
                       "after": after[name]["summary"]["accuracy"], "gain": d.value, "low": d.low, "high": d.high}
    res = {"config": args.config, "overrides": args.overrides, "start": start, "rl_run": str(rdir),
           "rl": json.loads(cfg.rl.model_dump_json()) | {"warmup": cfg.rl.warmup}, "reward": cfg.task.reward,
           "gains": gains, "curve": _curve(rdir), "rl_seconds": rl_seconds, "total_seconds": time.time() - t0,
           "before": {k: v["summary"] for k, v in before.items()}, "after": {k: v["summary"] for k, v in after.items()}}
    Path(args.out + ".json").write_text(json.dumps(res, indent=1))
    Path(args.out + ".md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
