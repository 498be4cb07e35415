"""``raysweep spectral edit``: build spectrally edited checkpoints from (ref, target), evaluate them on ID
and OOD beside the ref and the target, and report what each edit restored.

Each edit replaces the analysed weight matrices of the target (limited to ``spectral.edit_modules`` and
``spectral.edit_layers``) by :func:`raysweep.spectral.maths.edit_matrix` of (ref, target); every other
tensor (embeddings, norms, untouched blocks) is the target's. The result is an ordinary Hugging Face
checkpoint directory (safetensors, the target's config and tokenizer) that any tool can load:

    <out>/<edit>/                 model.safetensors (or the target's shards), config, tokenizer,
                                  eval.json (every hand's verdict), manifest.json (written last)
    <out>/edits.csv, edits.md     accuracy per rule and checkpoint with 95% intervals, paired differences
                                  against the target, and the share of the ref-target gap each edit closes
    <out>/edits.png               accuracies per checkpoint and rule

Finished edits (a manifest with the same evaluation key) are not built or evaluated again.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

from raysweep.tasks.protocol import task_of
from raysweep.config import RaysweepConfig
from raysweep.spectral.engine import chunks, edit_dirname, edit_group, run_tasks
from raysweep.spectral.weights import Matrix, common_matrices, tensor_files

SKIPPED_FILES = ("manifest.json", "eval.json", "training_args.bin", "model.safetensors.index.json")


def touched(ref: str, target: str, cfg: RaysweepConfig) -> list[Matrix]:
    s = cfg.spectral
    ms = [m for m in common_matrices([ref, target], s)
          if m.module in s.touched_modules and (not s.edit_layers or m.layer in s.edit_layers)]
    if not ms:
        from raysweep.config import ConfigError

        raise ConfigError(f"spectral.edit_modules / spectral.edit_layers select no weight matrix of {target} "
                          f"(modules {list(s.touched_modules)}, layers {list(s.edit_layers) or 'all'})")
    return ms


def assemble(target: str, parts: Sequence[str], dest: Path) -> Path:
    """``dest``: the target's checkpoint with the tensors in ``parts`` swapped in (written to a temporary
    directory, then renamed: never half a checkpoint)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    edited: dict = {}
    for p in parts:
        with safe_open(p, framework="pt") as f:
            for name in f.keys():
                edited[name] = f.get_tensor(name)
    src = Path(target)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and f.suffix not in (".safetensors", ".bin", ".pt", ".pth") and f.name not in SKIPPED_FILES:
            shutil.copy2(f, tmp / f.name)
    files = tensor_files(src)
    for shard in sorted(set(files.values())):
        with safe_open(str(shard), framework="pt") as f:
            meta = f.metadata() or {"format": "pt"}
            tensors = {name: edited.pop(name) if name in edited else f.get_tensor(name) for name in f.keys()}
        save_file(tensors, str(tmp / shard.name), metadata=meta)
    if (src / "model.safetensors.index.json").is_file():
        shutil.copy2(src / "model.safetensors.index.json", tmp / "model.safetensors.index.json")
    if edited:
        raise RuntimeError(f"edited tensors not found in {target}: {sorted(edited)[:3]}")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def build(ref: str, target: str, edits: Sequence[str], cfg: RaysweepConfig, out: Path,
          ms: list[Matrix]) -> dict[str, Path]:
    """Build the edited checkpoints not yet built, editing the matrices ``ms``; edit -> directory."""
    dirs = {e: out / edit_dirname(e) for e in edits}
    todo = [e for e in edits if not (dirs[e] / "config.json").is_file()]
    if todo:
        parts = out / "parts"
        calls = [(ref, target, group, todo, str(parts), i, cfg.spectral)
                 for i, group in enumerate(chunks(ms, cfg.spectral.matrices_per_task))]
        print(f"[spectral] editing {len(ms)} matrices {len(todo)} way(s) ({', '.join(todo)}) in {len(calls)} task(s)",
              file=sys.stderr, flush=True)
        results = run_tasks(edit_group, calls, cfg.spectral, "editing")
        for e in todo:
            assemble(target, [r[e] for r in results], dirs[e])
        shutil.rmtree(parts, ignore_errors=True)
    return dirs


def evaluation(path: Path, cfg: RaysweepConfig, cache: Path) -> dict:
    """rule -> {"summary", "records"} for the checkpoint at ``path``: its own ``eval.json`` if it was made
    with the same task and eval settings, else ``cache`` if there, else evaluated now (and cached)."""
    from raysweep.train.record import eval_key

    from raysweep.train.trunk import read_manifest

    key = eval_key(cfg)
    rules = list(task_of(cfg.task).eval_sets)
    if (read_manifest(path) or {}).get("eval_key") == key and (path / "eval.json").is_file():
        ev = json.loads((path / "eval.json").read_text())
        if all(r in ev for r in rules):
            return ev
    if cache.is_file():
        ev = json.loads(cache.read_text())
        if ev.get("eval_key") == key:
            return ev["results"]
    from raysweep import models
    from raysweep.evaluate import evaluate
    from raysweep.train.trunk import write_json_atomic

    print(f"[spectral] evaluating {path}", file=sys.stderr, flush=True)
    model, tok = models.load(str(path), device=cfg.model.device, dtype=cfg.model.dtype)
    res = evaluate(model, tok, cfg.task, cfg.eval, with_loss=True)
    del model
    out = {r: {"summary": v.summary(), "records": v.records} for r, v in res.items()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(cache, {"eval_key": key, "path": str(path), "results": out})
    return out


def table(evals: dict[str, dict], rules: Sequence[str]) -> list[dict]:
    """One row per (checkpoint, rule): accuracy, interval, loss; for edits, the paired difference against
    the target and the share of the ref-to-target change the edit undoes (``restored``: 1 = back at the
    ref, 0 = still the target)."""
    from raysweep.boundary.metrics import compare_records

    rows = []
    for name, ev in evals.items():
        for rule in rules:
            s = ev[rule]["summary"]
            row = {"checkpoint": name, "rule": rule, "accuracy": s["accuracy"], "low": s["ci95"][0],
                   "high": s["ci95"][1], "n": s["n"], "loss": s.get("loss")}
            if name not in ("ref", "target"):
                d = compare_records(evals["target"][rule]["records"], ev[rule]["records"])
                row.update(vs_target=d.value, vs_target_low=d.low, vs_target_high=d.high)
                gap = evals["ref"][rule]["summary"]["accuracy"] - evals["target"][rule]["summary"]["accuracy"]
                row["restored"] = d.value / gap if gap else None
                lr, lt = evals["ref"][rule]["summary"].get("loss"), evals["target"][rule]["summary"].get("loss")
                if lr is not None and lt is not None and s.get("loss") is not None and lr != lt:
                    row["loss_restored"] = (s["loss"] - lt) / (lr - lt)
            rows.append(row)
    return rows


def _f(v, pct: bool = False) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.1f}%" if pct else f"{v:.3g}"


def markdown(rows: Sequence[dict], labels: dict[str, str], cfg: RaysweepConfig, n_matrices: int, seconds: float) -> str:
    s = cfg.spectral
    lines = [f"# Spectral edits: ref {labels['ref']}, target {labels['target']}", "",
             f"{n_matrices} weight matrices edited (modules {', '.join(s.touched_modules)}; blocks "
             f"{', '.join(map(str, s.edit_layers)) or 'all'}); everything else is the target's. "
             "directions = the ref's singular vectors carrying the target's singular values; values = the target's "
             "vectors with the ref's values; both = the ref's matrices (a control); topk:f = the ref's top "
             "f of directions only. Paired differences against the target (Newcombe 95%); restored = share of the "
             "ref−target accuracy gap the edit closes (loss restored: the same for the expert-answer loss).", "",
             "| checkpoint | rule | accuracy [95% CI] | n | loss | vs target [95% CI] | restored | loss restored |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name = labels.get(r["checkpoint"], r["checkpoint"])
        vs = (f"{100 * r['vs_target']:+.1f} [{100 * r['vs_target_low']:+.1f}, {100 * r['vs_target_high']:+.1f}]"
              if "vs_target" in r else "")
        lines.append(f"| {name} | {r['rule']} | {_f(r['accuracy'], True)} [{_f(r['low'], True)}, {_f(r['high'], True)}] "
                     f"| {r['n']} | {_f(r['loss'])} | {vs} | {_f(r.get('restored'))} | {_f(r.get('loss_restored'))} |")
    lines += ["", f"Built and evaluated in {seconds:.0f} s."]
    return "\n".join(lines) + "\n"


def figure(rows: Sequence[dict], rules: Sequence[str], labels: dict[str, str], path: Path) -> Path:
    """Accuracy (95% intervals) and, where evaluated, the expert-answer loss, per checkpoint and rule."""
    from raysweep.plots import _pyplot

    plt = _pyplot()
    names = list(dict.fromkeys(r["checkpoint"] for r in rows))
    with_loss = all(r.get("loss") is not None for r in rows)
    fig, axes = plt.subplots(2 if with_loss else 1, len(rules), figsize=(5 * len(rules), 7 if with_loss else 3.8),
                             squeeze=False)
    colors = ["tab:gray", "tab:red"] + ["tab:blue"] * (len(names) - 2)
    for j, rule in enumerate(rules):
        rs = {r["checkpoint"]: r for r in rows if r["rule"] == rule}
        name = rule.upper() if rule in ("id", "ood") else rule
        ax = axes[0][j]
        ys = [rs[n]["accuracy"] for n in names]
        err = [[rs[n]["accuracy"] - rs[n]["low"] for n in names], [rs[n]["high"] - rs[n]["accuracy"] for n in names]]
        ax.bar(range(len(names)), ys, yerr=err, capsize=3, color=colors)
        ax.set(ylabel=f"{name} accuracy", title=f"edits: {name} accuracy (95% CI)")
        ax.set_ylim(0, min(1.0, max(0.1, 1.3 * max(rs[n]["high"] for n in names))))
        if with_loss:
            ax2 = axes[1][j]
            losses = [rs[n]["loss"] for n in names]
            ax2.bar(range(len(names)), losses, color=colors)
            lo, hi = min(losses), max(losses)
            ax2.set_ylim(max(0.0, lo - 0.5 * (hi - lo + 1e-9)), hi + 0.25 * (hi - lo + 1e-9))
            ax2.set(ylabel=f"{name} expert-answer loss", title=f"edits: {name} loss (lower is better)")
        for a in axes[:, j]:
            a.set_xticks(range(len(names)), [labels.get(n, n) for n in names], rotation=30, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run_edits(ref: str, target: str, cfg: RaysweepConfig, out: Path | None = None, log_to_mlflow: bool = True) -> list[dict]:
    """Build, evaluate and report every edit in ``cfg.spectral.edits``; the table's rows."""
    from raysweep.spectral.analysis import write_csv
    from raysweep.spectral.sources import named_pairs
    from raysweep.train.record import eval_key
    from raysweep.train.trunk import digest, write_json_atomic, write_text_atomic

    t0 = time.time()
    pair = named_pairs(ref, [target])[0]
    s = cfg.spectral
    scope = s.model_dump(mode="json", include={"modules", "layer_pattern", "edit_modules", "edit_layers", "dtype"})
    out = (out or Path(cfg.output_dir) / "spectral-edits" / digest([pair.ref, pair.target, scope], 12)).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ms = touched(pair.ref, pair.target, cfg)
    dirs = build(pair.ref, pair.target, s.edits, cfg, out, ms)
    evals = {"ref": evaluation(Path(pair.ref), cfg, out / "evals" / "ref.json"),
             "target": evaluation(Path(pair.target), cfg, out / "evals" / "target.json")}
    for e, d in dirs.items():
        evals[e] = evaluation(d, cfg, d / "eval.cache.json")
        if not (d / "manifest.json").is_file():
            write_json_atomic(d / "eval.json", evals[e])
            write_json_atomic(d / "manifest.json", {
                "kind": "spectral-edit", "edit": e, "ref": pair.ref, "target": pair.target, "matrices": len(ms),
                "modules": list(s.touched_modules), "layers": list(s.edit_layers), "eval_key": eval_key(cfg),
                "eval": {r: {k: v["summary"][k] for k in ("accuracy", "ci95", "n", "loss")} for r, v in evals[e].items()},
                "created": time.time()})
            (d / "eval.cache.json").unlink(missing_ok=True)
    rules = list(task_of(cfg.task).eval_sets)
    rows = table(evals, rules)
    labels = {"ref": f"ref ({pair.ref_label})", "target": f"target ({pair.target_label})"}
    seconds = time.time() - t0
    files = [write_csv(rows, out / "edits.csv"), figure(rows, rules, labels, out / "edits.png")]
    write_text_atomic(out / "edits.md", markdown(rows, labels, cfg, len(ms), seconds))
    files.append(out / "edits.md")
    print((out / "edits.md").read_text())
    if log_to_mlflow and cfg.tracking.enabled:
        import mlflow

        from raysweep.tracking import check_reachable, start_run, tracking_uri

        check_reachable(tracking_uri(cfg.tracking, cfg.output_dir))
        params = {"spectral.ref": pair.ref, "spectral.target": pair.target, "spectral.edits": json.dumps(list(s.edits)),
                  "spectral.edit_modules": json.dumps(list(s.touched_modules)),
                  "spectral.edit_layers": json.dumps(list(s.edit_layers)), "eval.n": str(cfg.eval.n)}
        run = start_run(cfg.tracking, cfg.output_dir, out / "mlflow_run_id",
                        f"spectral-edit/{pair.ref_label} -> {pair.target_label}", params,
                        {"raysweep.kind": "spectral-edit"})
        try:
            from raysweep.spectral.report import metric_key

            have = mlflow.tracking.MlflowClient().get_run(run.info.run_id).data.metrics  # a rerun adds only new ones
            for r in rows:
                name = r["checkpoint"].replace(":", "-")
                for what in ("accuracy", "loss"):
                    key = metric_key(f"{name}.{r['rule']}.{what}")
                    if r.get(what) is not None and key not in have:
                        mlflow.log_metric(key, r[what])
            for f in files:
                mlflow.log_artifact(str(f), "edits")
        finally:
            mlflow.end_run()
    print(f"[spectral] edits in {out} ({seconds:.0f}s)", file=sys.stderr, flush=True)
    return rows
