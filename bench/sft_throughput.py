"""Benchmark: SFT throughput of a trunk (tokens/s, s/step) by worker count and ZeRO stage, and what the
trunk saves against training every SFT length separately.

Each configuration trains a fresh trunk for ``--steps`` optimizer steps through the real stack (Ray Train
TorchTrainer, DeepSpeed ZeRO, TRL SFTTrainer; tiny evaluations only at step 0 and the end) and reads the
step times and token counts from the trunk's results file; the first ``--skip`` steps are warm-up and
not timed. Results: bench/results/sft_throughput.json and .md.

    python bench/sft_throughput.py [--model smollm2-135m] [--steps 6] [--configs 1:0,2:0,2:2,2:3]
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
from raysweep.train.sft import run_sft

GRID = [10, 20, 40, 80, 160, 320, 640, 1280]  # an 8-length SFT grid, as in the paper's sweeps


def measure(model: str, workers: int, stage: int, steps: int, skip: int, batch: int, out: Path) -> dict:
    threads = max(1, (os.cpu_count() or 1) // workers)  # every configuration uses all cores
    cfg = load_config(None, [f"sft.cpus_per_worker={threads}",
        f"model.name={model}", f"sft.num_workers={workers}", f"sft.deepspeed.stage={stage}",
        f"sft.checkpoints=[0, {steps}]", f"sft.per_device_batch_size={batch // workers}", "sft.num_examples=256",
        "sft.warmup_steps=0", "eval.n=4", "eval.max_new_tokens=4", "tracking.enabled=false",
        f"output_dir={out}"])
    t0 = time.time()
    (tdir,) = run_sft(cfg)
    wall = time.time() - t0
    train = [r for r in T.read_results(tdir) if r["kind"] == "train"]
    timed = [r for r in train if r["step"] > skip]
    dt = timed[-1]["time"] - train[skip - 1]["time"] if skip else timed[-1]["time"] - timed[0]["time"]
    n_steps = len(timed)
    tokens = timed[-1]["num_tokens"] - (train[skip - 1]["num_tokens"] if skip else 0)
    # num_tokens counts the tokens seen by all workers (TRL gathers it across ranks)
    return {"workers": workers, "threads_per_worker": threads, "zero": stage, "global_batch": batch, "steps_timed": n_steps,
            "s_per_step": round(dt / n_steps, 3), "tokens_per_s": round(tokens / dt, 1), "wall_s": round(wall, 1),
            "overhead_s": round(wall - dt * len(train) / n_steps, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--skip", type=int, default=2, help="warm-up steps not timed")
    ap.add_argument("--batch", type=int, default=8, help="global batch (split across workers)")
    ap.add_argument("--configs", default="1:0,2:0,2:2,2:3", help="workers:zero_stage,...")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "sft_throughput"))
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="raysweep-bench-sft-") as tmp:
        for item in args.configs.split(","):
            w, z = (int(x) for x in item.split(":"))
            row = measure(args.model, w, z, args.steps, args.skip, args.batch, Path(tmp) / f"w{w}z{z}")
            rows.append(row)
            print(json.dumps(row), flush=True)

    best = min(rows, key=lambda r: r["s_per_step"])
    trunk_steps, separate_steps = max(GRID), sum(GRID)
    overhead = best["overhead_s"]
    saving = {
        "grid": GRID, "trunk_steps": trunk_steps, "separate_steps": separate_steps,
        "step_ratio": round(separate_steps / trunk_steps, 2),
        "trunk_hours": round((trunk_steps * best["s_per_step"] + overhead) / 3600, 2),
        "separate_hours": round((separate_steps * best["s_per_step"] + len(GRID) * overhead) / 3600, 2),
        "from": f"{best['workers']} worker(s), ZeRO-{best['zero']}: {best['s_per_step']} s/step, "
                f"{overhead} s start-up per run (measured)",
    }
    meta = {"model": args.model, "steps": args.steps, "skip": args.skip, "global_batch": args.batch,
            "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows, "trunk_saving": saving}, indent=1))
    lines = [f"# SFT throughput: {args.model}, global batch {args.batch}, {args.steps} steps ({args.skip} warm-up)",
             f"{meta}", "", "| workers x threads | ZeRO | s/step | tokens/s | run wall s | start-up + eval s |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['workers']} x {r['threads_per_worker']} | {r['zero']} | {r['s_per_step']} | {r['tokens_per_s']} | {r['wall_s']} | "
              f"{r['overhead_s']} |" for r in rows]
    lines += ["", f"Trunk vs separate runs for SFT lengths {GRID}: {trunk_steps} vs {separate_steps} steps "
              f"({saving['step_ratio']}x); {saving['trunk_hours']} h vs {saving['separate_hours']} h "
              f"({saving['from']})."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
