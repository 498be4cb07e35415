"""Benchmark: batched evaluation against one-prompt-at-a-time ``generate`` (smollm2-135m by default).

Modes, all greedy over the same fixed OOD evaluation set and the same token budget:
  naive           one prompt per ``model.generate`` call (no padding, no batching)
  batched         left-padded batches of whole prompts, KV cache
  batched+prefix  batches that start from the shared prompt prefix's KV cache (raysweep's default)

For each: wall seconds, generated tokens/s, prompts/s, and agreement with naive (same verdict, same
text). Results go to bench/results/eval_throughput.json and .md. Usage:

    python bench/eval_throughput.py [--model smollm2-135m] [--n 64] [--batch-sizes 16,32,64]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from raysweep import models
from raysweep.evaluate import EvalConfig, auto_max_new_tokens, generate
from raysweep.tasks.datasets import eval_dataset
from raysweep.tasks.generalpoints import TaskConfig, score


def naive(model, tok, prompts, budget):
    outs, n_tok = [], 0
    with torch.inference_mode():
        for p in prompts:
            enc = tok.apply_chat_template(p, add_generation_prompt=True, return_tensors="pt", return_dict=True)
            enc = {k: v.to(model.device) for k, v in enc.items()}
            seq = model.generate(**enc, max_new_tokens=budget, do_sample=False, temperature=None, top_p=None,
                                 top_k=None, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
            new = seq[0, enc["input_ids"].shape[1]:].tolist()
            n_tok += len(new)
            outs.append([tok.decode(new, skip_special_tokens=True)])
    return outs, n_tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--rule", default="ood")
    ap.add_argument("--batch-sizes", default="16,32,64")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "eval_throughput"))
    args = ap.parse_args()

    model, tok = models.load(args.model)
    task = TaskConfig()
    ds = eval_dataset(task, args.rule, args.n, 0)
    budget = auto_max_new_tokens(tok, [c[0]["content"] for c in ds["completion"]])
    rule = task.rule(args.rule)

    def verdicts(answers):
        return [score(c, a[0], rule, task.target).verdict for c, a in zip(ds["cards"], answers)]

    rows = []

    def record(mode, bs, seconds, answers, n_tok, ref):
        v = verdicts(answers)
        row = {"mode": mode, "batch_size": bs, "seconds": round(seconds, 2), "generated_tokens": n_tok,
               "tokens_per_s": round(n_tok / seconds, 1), "prompts_per_s": round(len(answers) / seconds, 3),
               "accuracy": sum(x == "correct" for x in v) / len(v)}
        if ref is not None:
            row["same_text_as_naive"] = sum(a == b for a, b in zip(answers, ref[0])) / len(answers)
            row["same_verdict_as_naive"] = sum(a == b for a, b in zip(v, ref[1])) / len(v)
        rows.append(row)
        print(json.dumps(row), flush=True)

    t0 = time.time()
    ref_answers, n_tok = naive(model, tok, ds["prompt"], budget)
    record("naive", 1, time.time() - t0, ref_answers, n_tok, None)
    ref = (ref_answers, verdicts(ref_answers))
    for bs in [int(x) for x in args.batch_sizes.split(",")]:
        for share in (False, True):
            t0 = time.time()
            ans, n_tok = generate(model, tok, ds["prompt"], EvalConfig(batch_size=bs), budget, progress=None,
                                  share_prefix=share)
            record("batched+prefix" if share else "batched", bs, time.time() - t0, ans, n_tok, ref)

    meta = {"model": args.model, "n_prompts": args.n, "rule": args.rule, "max_new_tokens": budget,
            "device": str(model.device), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "machine": platform.machine(), "cpu_count": __import__("os").cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [f"# Eval throughput: {args.model}, {args.n} {args.rule} prompts, greedy, max_new_tokens={budget}",
             f"{meta}", "", "| mode | batch | seconds | gen tok/s | prompts/s | same text as naive | same verdict |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['batch_size']} | {r['seconds']} | {r['tokens_per_s']} | {r['prompts_per_s']} "
                     f"| {r.get('same_text_as_naive', '-')} | {r.get('same_verdict_as_naive', '-')} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
