"""Benchmark: RL step time (GRPO/RLOO through the real stack) and rollout generation tokens/s.

Each configuration runs ``--steps`` RL steps with ``raysweep.train.rl.run_rl`` (Ray Train TorchTrainer,
DeepSpeed ZeRO, TRL GRPOTrainer/RLOOTrainer, the verifier reward; evaluations shrunk to 4 prompts) and
reads the step times from the run's results file; the first ``--skip`` steps are warm-up. Separately, in
this process, one step's rollouts (``batch`` prompts x ``generations`` samples at temperature 1) are
generated with ``model.generate`` and timed: generation tokens/s, and the share of a step it explains.
Results: bench/results/rl_throughput.json and .md.

    python bench/rl_throughput.py [--checkpoint smollm2-135m] [--steps 5] [--configs grpo:1:0,rloo:1:0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from raysweep.config import load_config
from raysweep.train import trunk as T


def overrides(args, algorithm: str, workers: int, stage: int, out: Path) -> list[str]:
    threads = max(1, (os.cpu_count() or 1) // workers)  # every configuration uses all cores
    return [f"model.name={args.model}", f"rl.checkpoint={args.checkpoint}", f"rl.algorithm={algorithm}",
            f"rl.num_workers={workers}", f"rl.cpus_per_worker={threads}", f"rl.deepspeed.stage={stage}",
            f"rl.max_steps={args.steps}", "rl.eval_every=0", f"rl.save_every={args.steps}",
            f"rl.batch_size={args.batch}", f"rl.num_generations={args.generations}", f"rl.beta={args.beta}",
            "task.reward=paper", "eval.n=4", "eval.max_new_tokens=4", "tracking.enabled=false", f"output_dir={out}"]


def measure_rl(args, algorithm: str, workers: int, stage: int, out: Path) -> dict:
    from raysweep.train.rl import run_rl

    cfg = load_config(None, overrides(args, algorithm, workers, stage, out))
    t0 = time.time()
    rdir = run_rl(cfg)
    wall = time.time() - t0
    train = [r for r in T.read_results(rdir) if r["kind"] == "train"]
    first = train[args.skip - 1] if args.skip else None
    timed = train[args.skip:]
    dt = timed[-1]["time"] - (first["time"] if first else timed[0]["time"])
    n = len(timed) if first else len(timed) - 1
    mean_len = sum(r["completions/mean_length"] for r in train) / len(train)
    return {"algorithm": algorithm, "workers": workers, "zero": stage, "steps_timed": n,
            "s_per_step": round(dt / n, 2), "completions_per_step": args.batch * args.generations,
            "mean_completion_tokens": round(mean_len, 1),
            "reward_first_last": [round(train[0]["reward"], 3), round(train[-1]["reward"], 3)],
            "wall_s": round(wall, 1), "overhead_s": round(wall - dt / n * len(train), 1)}


def measure_generation(args) -> dict:
    """One RL step's rollouts, generated alone: what generation costs of a step."""
    import torch

    from raysweep import models
    from raysweep.evaluate import EvalConfig, generate
    from raysweep.tasks.datasets import rl_dataset
    from raysweep.tasks.generalpoints import TaskConfig
    from raysweep.train.rl_worker import budgets

    torch.set_num_threads(os.cpu_count() or 1)
    cfg = load_config(None, overrides(args, "grpo", 1, 0, Path("unused")))
    model, tok = models.load(args.checkpoint, device="cpu")
    budget = budgets(cfg, tok)[1]
    prompts = rl_dataset(TaskConfig(), args.batch * 3, 0)["prompt"]
    ecfg = EvalConfig(temperature=1.0, samples=args.generations, batch_size=args.batch)
    rows = []
    for i in range(3):  # the first is warm-up
        batch = prompts[i * args.batch:(i + 1) * args.batch]
        t0 = time.time()
        _, tokens = generate(model, tok, batch, ecfg, budget, progress=None)
        rows.append((time.time() - t0, tokens))
    secs = sum(s for s, _ in rows[1:]) / 2
    toks = sum(t for _, t in rows[1:]) / 2
    return {"budget_tokens": budget, "completions": args.batch * args.generations, "seconds": round(secs, 2),
            "tokens": toks, "tokens_per_s": round(toks / secs, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m", help="model.name (the base the start came from)")
    ap.add_argument("--checkpoint", default="smollm2-135m", help="where RL starts (a checkpoint dir or model spec)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--skip", type=int, default=1, help="warm-up steps not timed")
    ap.add_argument("--batch", type=int, default=2, help="prompts per step")
    ap.add_argument("--generations", type=int, default=4, help="completions per prompt")
    ap.add_argument("--beta", type=float, default=0.04, help="KL coefficient (> 0 adds a reference model)")
    ap.add_argument("--configs", default="grpo:1:0,grpo:2:2,rloo:1:0", help="algorithm:workers:zero_stage,...")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "rl_throughput"))
    args = ap.parse_args()

    gen = measure_generation(args)
    print(json.dumps(gen), flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="raysweep-bench-rl-") as tmp:
        for item in args.configs.split(","):
            a, w, z = item.split(":")
            row = measure_rl(args, a, int(w), int(z), Path(tmp) / f"{a}-w{w}z{z}")
            row["generation_share"] = round(gen["seconds"] / row["s_per_step"], 2)
            rows.append(row)
            print(json.dumps(row), flush=True)

    meta = {"model": args.model, "checkpoint": args.checkpoint, "steps": args.steps, "skip": args.skip,
            "prompts_per_step": args.batch, "generations": args.generations, "beta": args.beta,
            "machine": platform.machine(), "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "generation": gen, "rows": rows}, indent=1))
    lines = [f"# RL throughput: {args.model} from {args.checkpoint}, {args.batch} prompts x {args.generations} "
             f"completions per step, beta {args.beta}", "", f"{meta}", "",
             f"Rollout generation alone (one step's {gen['completions']} completions, <= {gen['budget_tokens']} "
             f"tokens, temperature 1, all cores): {gen['seconds']} s, {gen['tokens_per_s']} tokens/s.", "",
             "| algorithm | workers | ZeRO | s/step | completion tokens (mean) | generation share | "
             "reward first -> last | run wall s | start-up + eval s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['algorithm']} | {r['workers']} | {r['zero']} | {r['s_per_step']} | "
                     f"{r['mean_completion_tokens']} | {r['generation_share']} | {r['reward_first_last'][0]} -> "
                     f"{r['reward_first_last'][1]} | {r['wall_s']} | {r['overhead_s']} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
