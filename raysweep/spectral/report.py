"""``raysweep spectral``: compare checkpoints (named pairs, or a whole sweep), write tables, figures and a
summary, and log them to MLflow (a child run of the sweep's run, or a run of its own).

Along a trunk it tests "vectors rotate, values stay": the mean principal angle to the base and the
relative singular-value change at every SFT length, their Spearman correlations with the accuracy of
``boundary.rule`` (OOD by default) and with each other. It also scores label-free checkpoint signals
(the rotation rate between consecutive SFT lengths, the angle to the base) by how well they rank the
checkpoints against measured OOD accuracy, beside the evaluation loss a practitioner would watch.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Sequence

from raysweep.tasks.protocol import task_of
from raysweep.config import RaysweepConfig
from raysweep.plots import labelled
from raysweep.spectral.analysis import Pair, compute, write_tables
from raysweep.spectral.figures import layers_figure, main_fraction, modules_figure, trunk_figure
from raysweep.spectral.maths import fraction_key, spearman


def _fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def trunk_points(pairs_summary: Sequence[dict], seed: int, with_base: bool) -> list[dict]:
    """The ``trunk`` pairs of one seed by SFT length (the base itself first, at zero change, if asked)."""
    pts = sorted((r for r in pairs_summary if r["kind"] == "trunk" and r["seed"] == seed), key=lambda r: r["sft_step"])
    if with_base and pts:
        zero = {k: (0.0 if isinstance(v, float) else v) for k, v in pts[0].items()}
        zero.update(sft_step=0, target_label=f"seed{seed}/base", target=pts[0]["ref"], pair=-1)
        pts = [zero] + pts
    return pts


def trunk_correlations(points: Sequence[dict], steps_summary: Sequence[dict], curve: dict[int, float],
                       losses: dict[int, float], fraction: float, rule_loss: dict[int, float] | None = None) -> dict:
    """Per trunk: how angle, value change, rotation rate and loss relate to the accuracy ``curve``
    (SFT length -> accuracy); Spearman coefficients over the checkpoints that have an accuracy. With
    ``rule_loss`` (the rule's expert-answer loss by length: a continuous OOD measure where accuracy is
    flat), the angle and the rotation rate against it too (lower loss = better, so ρ uses −loss)."""
    key = f"angle_mean.top{fraction_key(fraction)}"
    pts = [p for p in points if p["sft_step"] in curve]
    acc = [curve[p["sft_step"]] for p in pts]
    angle = [p[key] for p in pts]
    sv = [p["sv_rel_change"] for p in pts]
    out = {"checkpoints": len(pts), "spearman_angle_vs_acc": spearman(angle, acc),
           "spearman_sv_vs_acc": spearman(sv, acc), "spearman_angle_vs_sv": spearman(angle, sv)}
    if pts:
        last = max(points, key=lambda p: p["sft_step"])
        out.update(last_step=last["sft_step"], last_angle=last[key], last_sv_rel_change=last["sv_rel_change"],
                   last_w_rel_change=last["w_rel_change"])
        flat = max(curve.values()) == min(curve.values())  # no peak to find
        out["peak_step"] = None if flat else max(curve, key=lambda s: (curve[s], -s))
    # label-free signals, over SFT lengths > 0 that were evaluated
    rate = {}
    trunk = {p["sft_step"]: p for p in points if p["sft_step"] > 0}
    first = min(trunk, default=None)
    if first is not None:
        rate[first] = trunk[first][key] / first
    for r in steps_summary:
        if r["sft_step"] in trunk:
            rate[r["sft_step"]] = r[key] / (r["sft_step"] - r["prev_step"])
    steps = [s for s in sorted(rate) if s in curve]
    if steps:
        a = [curve[s] for s in steps]
        out["rate"] = {s: rate[s] for s in steps}
        out["spearman_rate_vs_acc"] = spearman([rate[s] for s in steps], a)
        out["spearman_angle_vs_acc_sft"] = spearman([trunk[s][key] for s in steps], a)
        out["rate_pick"] = max(steps, key=lambda s: rate[s])
        lsteps = [s for s in steps if s in losses]
        if lsteps:
            out["spearman_neg_loss_vs_acc"] = spearman([-losses[s] for s in lsteps], [curve[s] for s in lsteps])
            out["loss_pick"] = min(lsteps, key=lambda s: losses[s])
        out["peak_step_sft"] = None if len({curve[s] for s in steps}) == 1 else max(steps, key=lambda s: (curve[s], -s))
    if rule_loss:
        lp = [p for p in points if p["sft_step"] in rule_loss]
        out["spearman_angle_vs_neg_rule_loss"] = spearman([p[key] for p in lp], [-rule_loss[p["sft_step"]] for p in lp])
        out["rule_loss_best_step"] = min(rule_loss, key=lambda s: (rule_loss[s], s))
        rs = [s for s in sorted(rate) if s in rule_loss]
        if rs:
            out["spearman_rate_vs_neg_rule_loss"] = spearman([rate[s] for s in rs], [-rule_loss[s] for s in rs])
    return out


def markdown(title: str, pairs_summary: Sequence[dict], fractions: Sequence[float], trunks: dict, rl_rows: list[dict],
             rule: str, missing: Sequence[str], seconds: float) -> str:
    fr = list(fractions)
    head = "| pair | kind | " + " | ".join(f"angle top {f:g} (deg)" for f in fr) + \
           " | sv change | weight change | outside top 0.1 |"
    lines = [f"# Spectral analysis: {title}", "",
             "Mean principal angle between the ref's and the target's top-k singular subspaces (k = fraction of "
             "each matrix's rank; mean over left and right subspaces and over matrices), relative change of the "
             "singular values (||s_t - s_r|| / ||s_r||) and of the weights (||W_t - W_r||_F / ||W_r||_F), and the "
             "share of the update's energy outside the ref's top-10% subspaces.", "",
             head, "|" + "---|" * (2 + len(fr) + 3)]
    for r in pairs_summary:
        out_key = "outside.top0.1"
        lines.append(f"| {r['ref_label']} → {r['target_label']} | {r['kind']} | "
                     + " | ".join(_fmt(r[f'angle_mean.top{fraction_key(f)}']) for f in fr)
                     + f" | {100 * r['sv_rel_change']:.3g}% | {100 * r['w_rel_change']:.3g}% | {_fmt(r.get(out_key))} |")
    if trunks:
        name = rule.upper() if rule in ("id", "ood") else rule
        lines += ["", f"## Along the trunk: do vectors rotate while values stay, and does rotation track {name}?", "",
                  f"Spearman coefficients over the trunk's checkpoints (base included at zero change); angle = top "
                  f"{main_fraction(fractions):g} of rank.", "",
                  f"| seed | checkpoints | angle at last (deg) | sv change at last | ρ(angle, {name}) | ρ(sv change, "
                  f"{name}) | ρ(angle, sv change) | {name} peak at | ρ(angle, −{name} loss) | {name} loss lowest at |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for seed, c in trunks.items():
            lines.append(f"| {seed} | {c['checkpoints']} | {_fmt(c.get('last_angle'))} | "
                         f"{100 * c.get('last_sv_rel_change', float('nan')):.3g}% | {_fmt(c['spearman_angle_vs_acc'])} | "
                         f"{_fmt(c['spearman_sv_vs_acc'])} | {_fmt(c['spearman_angle_vs_sv'])} | "
                         f"{_fmt(c.get('peak_step'))} | {_fmt(c.get('spearman_angle_vs_neg_rule_loss'))} | "
                         f"{_fmt(c.get('rule_loss_best_step'))} |")
        lines += ["", "### Label-free checkpoint signals (beyond the paper)", "",
                  f"Can a signal computed without {name} labels rank the SFT checkpoints by {name} accuracy? "
                  "Rotation rate = mean angle between consecutive checkpoints per SFT step; the loss is the ID "
                  "evaluation loss (lower is better, so ρ uses −loss). ρ = 1: the signal orders checkpoints exactly "
                  f"as {name} accuracy does. NaN: a constant signal or accuracy.", "",
                  f"| seed | ρ(rotation rate, {name}) | ρ(angle to base, {name}) | ρ(−loss, {name}) | {name} peak | "
                  f"highest rate at | lowest loss at | ρ(rotation rate, −{name} loss) |", "|---|---|---|---|---|---|---|---|"]
        for seed, c in trunks.items():
            lines.append(f"| {seed} | {_fmt(c.get('spearman_rate_vs_acc'))} | {_fmt(c.get('spearman_angle_vs_acc_sft'))} | "
                         f"{_fmt(c.get('spearman_neg_loss_vs_acc'))} | {_fmt(c.get('peak_step_sft'))} | "
                         f"{_fmt(c.get('rate_pick'))} | {_fmt(c.get('loss_pick'))} | "
                         f"{_fmt(c.get('spearman_rate_vs_neg_rule_loss'))} |")
    if rl_rows:
        f = main_fraction(fractions)
        lines += ["", f"## RL: does it turn the directions back towards the base? (angle top {f:g}, deg)", "",
                  "| cell | base → SFT start | SFT start → RL | base → RL | sv change SFT → RL |",
                  "|---|---|---|---|---|"]
        for r in rl_rows:
            lines.append(f"| {r['cell']} | {_fmt(r.get('base_to_start'))} | {_fmt(r.get('start_to_rl'))} | "
                         f"{_fmt(r.get('base_to_rl'))} | {_fmt(r.get('sv_start_to_rl'))} |")
    if missing:
        lines += ["", f"Not analysed yet (not finished): {', '.join(missing)}."]
    lines += ["", f"Computed in {seconds:.0f} s."]
    return "\n".join(lines) + "\n"


def rl_table(pairs_summary: Sequence[dict], fraction: float) -> list[dict]:
    key = f"angle_mean.top{fraction_key(fraction)}"
    trunk = {(r["seed"], r["sft_step"]): r for r in pairs_summary if r["kind"] == "trunk"}
    rows: dict[str, dict] = {}
    for r in pairs_summary:
        if r["kind"] in ("rl", "rl-base"):
            row = rows.setdefault(r["cell"], {"cell": r["cell"], "seed": r["seed"], "sft_step": r["sft_step"]})
            if r["kind"] == "rl":
                row.update(start_to_rl=r[key], sv_start_to_rl=r["sv_rel_change"])
            else:
                row["base_to_rl"] = r[key]
            t = trunk.get((r["seed"], r["sft_step"]))
            row["base_to_start"] = t[key] if t else (0.0 if r["sft_step"] == 0 else None)
    return list(rows.values())


def _figures(out: Path, tables: dict, cfg: RaysweepConfig, title: str) -> list[Path]:
    f = main_fraction(cfg.spectral.fractions)
    summary = tables["pairs"]
    labels = {r["pair"]: f"{r['ref_label']} → {r['target_label']}" for r in summary}
    files = []
    kinds = [("trunk", "base vs SFT"), ("rl", "SFT start vs RL"), ("pair", title)]
    for kind, what in kinds:
        ids = [r["pair"] for r in summary if r["kind"] == kind]
        files.append(layers_figure(tables["by_layer"], ids, labels, f, out / f"layers_{kind}.png", what))
        files.append(modules_figure(tables["by_module"], ids, labels, f, cfg.spectral.modules,
                                    out / f"modules_{kind}.png", what))
    return [p for p in files if p is not None]


def metric_key(name: str) -> str:
    """An MLflow-legal metric name (letters, digits, ``_ - . /`` and spaces; at most 250 characters)."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", name)[:250]


def _log(cfg: RaysweepConfig, out: Path, files: list[Path], metrics: list[tuple[str, float, int]],
         run_name: str, parent: str | None, params: dict[str, str]) -> str | None:
    if not cfg.tracking.enabled:
        return None
    import mlflow

    from raysweep.tracking import check_reachable, start_run, tracking_uri

    check_reachable(tracking_uri(cfg.tracking, cfg.output_dir))
    tags = {"raysweep.kind": "spectral", **({"mlflow.parentRunId": parent} if parent else {})}
    existed = (out / "mlflow_run_id").is_file()
    run = start_run(cfg.tracking, cfg.output_dir, out / "mlflow_run_id", run_name, params, tags)
    try:
        client = mlflow.tracking.MlflowClient()
        logged: dict[str, set[int]] = {}
        by_step: dict[int, dict[str, float]] = {}
        for k, v, step in metrics:
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            key = metric_key(k)
            if existed and key not in logged:  # a rerun adds the new points only, never a second copy
                logged[key] = {m.step for m in client.get_metric_history(run.info.run_id, key)}
            if step not in logged.get(key, ()):
                by_step.setdefault(step, {})[key] = float(v)
        for step, ms in sorted(by_step.items()):
            mlflow.log_metrics(ms, step=step)
        for p in files:
            mlflow.log_artifact(str(p), "spectral")
    finally:
        mlflow.end_run()
    return run.info.run_id


def _metrics(tables: dict, trunks: dict, cfg: RaysweepConfig) -> list[tuple[str, float, int]]:
    """MLflow metrics: along each trunk (step = SFT length), per block for every pair (step = block), and
    the trunk correlations."""
    out = []
    fr = [fraction_key(f) for f in cfg.spectral.fractions]
    for r in tables["pairs"]:
        if r["kind"] == "trunk":
            for f in fr:
                out.append((f"trunk.seed{r['seed']}.angle_mean.top{f}", r[f"angle_mean.top{f}"], r["sft_step"]))
            out.append((f"trunk.seed{r['seed']}.sv_rel_change", r["sv_rel_change"], r["sft_step"]))
    labels = {r["pair"]: f"{r['ref_label']}_to_{r['target_label']}" for r in tables["pairs"]}
    main = fraction_key(main_fraction(cfg.spectral.fractions))
    for r in tables["by_layer"]:
        out.append((f"layer.{labels[r['pair']]}.angle_mean.top{main}", r[f"angle_mean.top{main}"], r["layer"]))
        out.append((f"layer.{labels[r['pair']]}.sv_rel_change", r["sv_rel_change"], r["layer"]))
    for seed, c in trunks.items():
        for k in ("spearman_angle_vs_acc", "spearman_sv_vs_acc", "spearman_angle_vs_sv", "spearman_rate_vs_acc",
                  "spearman_neg_loss_vs_acc", "spearman_angle_vs_neg_rule_loss", "spearman_rate_vs_neg_rule_loss"):
            if k in c:
                out.append((f"seed{seed}.{k}", c[k], 0))
    return out


def write(out: Path, pairs: list[Pair], cfg: RaysweepConfig, title: str, *, trunks: Sequence[tuple[int, Path]] = (),
          missing: Sequence[str] = (), log_to_mlflow: bool = True, parent: str | None = None,
          params: dict[str, str] | None = None) -> dict:
    """Compare ``pairs``, write everything to ``out``, log it; the summary (also ``out/spectral.json``).
    ``trunks``: (seed, trunk directory) whose ``trunk`` pairs are correlated with the trunk's accuracy."""
    from raysweep.train.record import config_params

    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    rows = compute(pairs, cfg.spectral, out / "cache")
    tables = write_tables(rows, out)
    corr: dict = {}
    rule = cfg.boundary.rule
    f = main_fraction(cfg.spectral.fractions)
    from raysweep.boundary.analyse import trunk_curve

    for seed, tdir in trunks:
        curve, rule_losses = trunk_curve(tdir, rule)
        _, id_losses = trunk_curve(tdir, task_of(cfg.task).eval_sets[0])
        acc = {s: a for s, a, _, _ in curve}
        pts = trunk_points(tables["pairs"], seed, with_base=0 in acc)
        if not pts:
            continue
        steps = [r for r in tables["pairs"] if r["kind"] == "step" and r["seed"] == seed]
        corr[seed] = trunk_correlations(pts, steps, acc, id_losses, f, rule_losses)
        p = trunk_figure(pts, cfg.spectral.fractions, curve, rule, out / f"trunk_seed{seed}.png",
                         labelled(f"trunk seed {seed}: rotation vs singular values", cfg.sweep.label))
        if p:
            corr[seed]["figure"] = p.name
    from raysweep.train.trunk import write_json_atomic, write_text_atomic

    rl_rows = rl_table(tables["pairs"], f)
    seconds = time.time() - t0
    write_text_atomic(out / "spectral.md", markdown(title, tables["pairs"], cfg.spectral.fractions, corr, rl_rows,
                                                    rule, missing, seconds))
    summary = {"title": title, "pairs": tables["pairs"], "trunks": {str(k): v for k, v in corr.items()},
               "rl": rl_rows, "missing": list(missing), "seconds": seconds,
               "settings": cfg.spectral.model_dump(mode="json")}
    previous = json.loads((out / "spectral.json").read_text()) if (out / "spectral.json").is_file() else {}
    write_json_atomic(out / "spectral.json", summary)
    files = _figures(out, tables, cfg, title) + sorted(out.glob("trunk_seed*.png"))
    files += [out / n for n in ("spectral.md", "spectral.json", "pairs.csv", "by_module.csv", "by_layer.csv",
                                "matrices.csv")]

    def content(d: dict) -> str:
        return json.dumps({k: d.get(k) for k in ("pairs", "trunks", "rl")}, sort_keys=True, default=str)

    same = bool(previous.get("mlflow_run_id")) and content(previous) == content(json.loads(json.dumps(summary, default=str)))
    if log_to_mlflow and same:
        summary["mlflow_run_id"] = previous["mlflow_run_id"]
        write_json_atomic(out / "spectral.json", summary)
        print(f"[spectral] nothing new since the last analysis: MLflow run {previous['mlflow_run_id']} is up to date",
              file=sys.stderr, flush=True)
    elif log_to_mlflow:
        params = {"spectral.pairs": str(len(pairs)), **(params or {}),
                  **{k: v for k, v in config_params(cfg).items() if k.startswith("spectral.")}}
        try:
            run_id = _log(cfg, out, files, _metrics(tables, corr, cfg), f"spectral/{title}", parent, params)
        except Exception as exc:  # noqa: BLE001 - the analysis is on disk; a rerun (all cached) logs it
            from raysweep.redact import redact

            print(f"[spectral] MLflow did not take the analysis ({redact(repr(exc))[:300]}); it is in {out}; run the "
                  "same command again to log it (every pair is cached)", file=sys.stderr, flush=True)
            run_id = None
        if run_id:
            summary["mlflow_run_id"] = run_id
            write_json_atomic(out / "spectral.json", summary)  # logged: a rerun with nothing new skips MLflow
    print(f"[spectral] {len(pairs)} pair(s), {len(rows)} matrix comparisons in {seconds:.0f}s; wrote {out}",
          file=sys.stderr, flush=True)
    return summary


def spectral_sweep(sweep_dir: str | Path, overrides: list[str] | None = None, log_to_mlflow: bool = True) -> dict:
    """The spectral analysis of a sweep's trunks and finished RL cells, in ``<sweep>/spectral/``."""
    from raysweep.spectral.sources import sweep_config, sweep_pairs, sweep_trunks

    sdir = Path(sweep_dir).resolve()
    cfg = sweep_config(sdir, overrides)
    pairs, missing = sweep_pairs(sdir, cfg)
    _nothing_yet(sdir, pairs, missing)
    parent = (sdir / "mlflow_run_id").read_text().strip() if (sdir / "mlflow_run_id").is_file() else None
    return write(sdir / "spectral", pairs, cfg, sdir.name, trunks=sweep_trunks(cfg), missing=missing,
                 log_to_mlflow=log_to_mlflow, parent=parent, params={"spectral.sweep_dir": str(sdir)})


def spectral_trunk(trunk_dir: str | Path, overrides: list[str] | None = None, log_to_mlflow: bool = True) -> dict:
    """One trunk (``<output_dir>/trunks/<id>/seed-<s>``): base vs every SFT length and consecutive lengths,
    correlated with its accuracy curve, in ``<trunk>/spectral/`` (an MLflow child run of the trunk's run)."""
    from raysweep.spectral.sources import trunk_config, trunk_pairs

    tdir = Path(trunk_dir).resolve()
    cfg, seed = trunk_config(tdir, overrides)
    pairs, missing, _ = trunk_pairs(cfg, tdir, seed)
    _nothing_yet(tdir, pairs, missing)
    parent = (tdir / "mlflow_run_id").read_text().strip() if (tdir / "mlflow_run_id").is_file() else None
    return write(tdir / "spectral", pairs, cfg, f"trunk {tdir.parent.name} seed {seed}", trunks=[(seed, tdir)],
                 missing=missing, log_to_mlflow=log_to_mlflow, parent=parent, params={"spectral.trunk_dir": str(tdir)})


def _nothing_yet(where: Path, pairs: list, missing: list[str]) -> None:
    if not pairs:
        from raysweep.config import ConfigError

        raise ConfigError(f"{where}: no finished checkpoint beyond the base yet ({', '.join(missing) or 'nothing planned'})")


def spectral_pairs(ref: str, targets: list[str], cfg: RaysweepConfig, out: Path | None = None,
                   log_to_mlflow: bool = True) -> dict:
    """Compare ``ref`` against each of ``targets`` (checkpoint directories or model specs)."""
    from raysweep.spectral.sources import named_pairs
    from raysweep.train.trunk import digest

    pairs = named_pairs(ref, targets)
    title = f"{pairs[0].ref_label} vs {', '.join(p.target_label for p in pairs)}"[:120]
    out = out or Path(cfg.output_dir) / "spectral" / digest([[p.ref, p.target] for p in pairs], 12)
    return write(out.resolve(), pairs, cfg, title, log_to_mlflow=log_to_mlflow,
                 params={"spectral.ref": pairs[0].ref, "spectral.targets": json.dumps([p.target for p in pairs])[:6000]})
