"""``raysweep report <sweep dir>``: the recovery analysis written to ``<sweep>/report/`` and logged to the
sweep's MLflow parent run (artifact folder ``report``).

Files: ``boundary.csv`` (per cell and rule: accuracy before and after RL, the paired recovery with its
95% interval, the recovery ratio), ``report.md`` (the window per RL setting and rule, the peaks, whether
the loss would have found them, the table), and per rule ``recovery_<rule>.png``, ``heatmap_<rule>.png``,
``loss_<rule>.png``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from raysweep.tasks.protocol import task_of
from raysweep.boundary.analyse import Analysis, analyse, mean_verdict_shares, settings_label, summary_text
from raysweep.boundary.figures import heatmap_figure, loss_figure, recovery_figure
from raysweep.boundary.findings import markdown as findings_markdown
from raysweep.boundary.findings import paper_findings


def _attempt1(d) -> str:
    """The attempt-1 column of a multi-attempt report: a paired difference and its interval, or blank."""
    return f" {d.value:+.3f} [{d.low:+.3f}, {d.high:+.3f}] |" if d is not None else " |"


def _fmt(v) -> str:
    return "" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def markdown(a: Analysis, sweep_name: str, threshold: float, spectral: dict | None = None) -> str:
    caption = [f"**{a.cfg.sweep.label}**", ""] if a.cfg.sweep.label else []
    lines = [f"# Recovery report: {sweep_name}", "", *caption,
             f"Model `{a.cfg.model.name}`; SFT lengths {list(a.cfg.sft.checkpoints)}, seeds {list(a.cfg.sft.seeds)}; "
             f"{a.cfg.eval.n} distinct evaluation problems per rule (n counts problems; intervals cluster and pair "
             f"by problem). A length is in the window when the 95% interval of RL's paired gain (after RL − after "
             f"SFT, same problems) lies above {threshold:g}.", "",
             "## Findings", ""]
    multi = task_of(a.cfg.task).attempts > 1
    if multi:
        lines[-2:-2] = [f"Accuracy is within task.attempts={task_of(a.cfg.task).attempts} attempts (the verifier's feedback "
                        "after each wrong one, the paper's protocol); the recovery at attempt 1 is shown beside "
                        "it.", ""]
    lines += [f"- {line}" for line in summary_text(a).splitlines()]
    lines += ["", "## The paper's four findings", "", "Checked as `raysweep.boundary.findings` defines them (thresholds "
              "in its docstring); the spectral one needs `spectral.in_sweep` or `raysweep spectral --sweep`.", "",
              findings_markdown(paper_findings(a, spectral)).rstrip()]
    first_head = " at attempt 1 [95%] |" if multi else ""
    lines += ["", "## Recovery per SFT length (mean over seeds)", "",
              f"| rule | RL setting | SFT length | recovery | 95% interval | seeds |{first_head}",
              "|---|---|---:|---:|---|---:|" + ("---|" if multi else "")]
    for (settings, rule), by_step in sorted(a.recovery.items(), key=lambda kv: (kv[0][1], str(kv[0][0]))):
        firsts = a.recovery_first.get((settings, rule), {})
        weak = a.weak.get((settings, rule), set())
        for step, d in by_step.items():
            star = " **\\***" if d.low > threshold else " (too weak to test)" if step in weak else ""
            first = _attempt1(firsts.get(step)) if multi else ""
            lines.append(f"| {rule} | {settings_label(settings)} | {step} | {d.value:+.3f}{star} | "
                         f"[{d.low:+.3f}, {d.high:+.3f}] | {d.n} |{first}")
    lines += update_lines(a)
    lines += verdict_lines(a)
    lines += ["", "## Cells", "", "*RL update / SFT drift*: the relative weight change RL made (start → after RL) "
              "over SFT's (base → start); *angle Δ*: the change RL made in the mean top-10% principal angle to the "
              "base (degrees; negative: back toward the base).", "",
              f"| cell | rule | before | after | recovery [95%] | ratio [95%] | RL update / SFT drift | angle Δ |"
              f"{first_head}", "|---|---|---:|---:|---|---|---:|---:|" + ("---|" if multi else "")]
    for c in a.cells:
        r = c.row()
        ratio = (f"{r['ratio']:+.2f} [{r['ratio_low']:+.2f}, {r['ratio_high']:+.2f}]" if r["ratio"] is not None
                 else "n/a (SFT lost nothing)")
        first = _attempt1(c.first) if multi else ""
        lines.append(f"| {c.cell.name} | {c.rule} | {c.before:.3f} | {c.after:.3f} | "
                     f"{c.diff.value:+.3f} [{c.diff.low:+.3f}, {c.diff.high:+.3f}] | {ratio} | {_update(c)} | "
                     f"{_angle(c)} |{first}")
    return "\n".join(lines) + "\n"


def _update(c) -> str:
    """A cell's RL update / SFT drift, marked when too weak to test recovery."""
    if c.update is None:
        return "not measured"
    if c.update_ratio is None:
        return "n/a (from the base)"
    return f"{c.update_ratio:.2f}" + (" (too weak to test)" if c.too_weak else "")


def _angle(c) -> str:
    v = (c.update or {}).get("angle_change")
    return "" if v is None else f"{v:+.2f}°"


def update_lines(a: Analysis) -> list[str]:
    """The report's section on RL's size against SFT's: per cell once (not per rule), and in words which cells were
    too weak to test recovery."""
    seen, rows = set(), []
    for c in a.cells:
        if c.cell.name in seen:
            continue
        seen.add(c.cell.name)
        u = c.update or {}
        rows.append(f"| {c.cell.name} | {c.cell.sft_step} | {_fmt(u.get('rl_update'))} | {_fmt(u.get('sft_drift'))} | "
                    f"{_update(c)} | {_fmt(u.get('angle_rl'))} | {_angle(c)} |")
    if not rows:
        return []
    weak = sorted({c.cell.name for c in a.cells if c.too_weak})
    unknown = sorted({c.cell.name for c in a.cells if c.update is None})
    floor = a.cfg.boundary.min_rl_update
    words = (f"RL in {len(weak)} of {len(rows)} cells ({', '.join(weak)}) moved the weights less than {floor:g} of "
             "SFT's drift: those cells are **too weak to test recovery**; where they show no recovery it is not "
             "counted as 'does not recover' (the window and findings 2 and 3 leave them out)." if weak else
             f"RL moved the weights at least {floor:g} of SFT's drift in every measured cell "
             "(`boundary.min_rl_update`), so a cell that does not recover counts as one.")
    if unknown:
        words += f" Not measured (checkpoints gone): {', '.join(unknown)}."
    return ["", "## RL's update against SFT's drift", "",
            "Relative Frobenius norms over the analysed weight matrices: RL's change (the cell's SFT checkpoint → after "
            "RL) and SFT's (base → that checkpoint); principal angles in degrees (mean over the top 10% of each "
            "matrix's singular directions, on a few matrices).", "", words, "",
            "| cell | SFT length | RL update | SFT drift | RL update / SFT drift | RL's rotation | angle Δ to base |",
            "|---|---:|---:|---:|---:|---:|---:|", *rows]


VERDICT_COLUMNS = ("correct", "train_rule_values", "wrong_cards", "wrong_value", "malformed")
VERDICT_HEAD = "correct | ignored the rule | other wrong numbers | wrong value | malformed"
VERDICT_NOTE = ("Share of evaluation answers per verdict: *ignored the rule* (`train_rule_values`: the formula "
                "computes with exactly the training rule's values for the hand, not the stated ones: the forgetting "
                "the paper is about), *other wrong numbers* (`wrong_cards`: a misread rule or numbers made up), "
                "*wrong value* (the right numbers, the wrong result), *malformed*.")


def _shares(counts: dict[str, int], columns: tuple[str, ...] = VERDICT_COLUMNS) -> str:
    total = max(1, sum(counts.values()))
    return " | ".join(f"{counts.get(v, 0) / total:.3f}" for v in columns)


def verdict_columns(task) -> tuple[tuple[str, ...], str, str]:
    """(verdict columns, their table head, the note above the tables) for ``task``: GeneralPoints' named
    failures, else the task's own verdicts."""
    if task.kind == "generalpoints":
        return VERDICT_COLUMNS, VERDICT_HEAD, VERDICT_NOTE
    return (tuple(task.verdicts), " | ".join(task.verdicts),
            f"Share of evaluation answers per verdict of the task's scorer ({', '.join(task.verdicts)}).")


def verdict_lines(a: Analysis) -> list[str]:
    """The report's tables of what the answers got wrong, per rule other than the training rule: along SFT
    (mean over seeds) and per RL cell (at its SFT checkpoint, then after RL): whether a fall in OOD accuracy
    comes with the training rule's values (the rule ignored), other wrong numbers, or the arithmetic failing,
    and which of them RL changes."""
    task = task_of(a.cfg.task)
    columns, head, note = verdict_columns(task)
    rule_sep = "|---:" * len(columns) + "|"
    others = [r for r in task.eval_sets if r != task.train_name]

    def along_sft(table: dict, title: str, note: str) -> list[str]:
        out: list[str] = []
        for rule in others:
            by_seed = [v for (seed, r), v in sorted(table.items()) if r == rule]
            if not by_seed:
                continue
            if not out:
                out += ["", title, "", note, "", f"| rule | SFT length | {head} | seeds |",
                        "|---|---:" + rule_sep + "---:|"]
            for step, (shares, k) in mean_verdict_shares(by_seed).items():
                cols = " | ".join(f"{shares.get(v, 0.0):.3f}" for v in columns)
                out.append(f"| {rule} | {step} | {cols} | {k} |")
        return out

    lines = along_sft(a.verdicts, "## What the answers got wrong along SFT (mean over seeds)", note)
    lines += along_sft(a.first_verdicts, "## What the first attempts got wrong along SFT (mean over seeds)",
                       "With several attempts per problem the table above holds each episode's last answer (after "
                       "the verifier's feedback); this one holds its first, before any feedback.")
    cells = [c for c in a.cells if c.rule in others and c.verdicts_after]
    if cells:
        first = any(c.first_after for c in cells)
        lines += ["", "## What the answers got wrong after RL (per cell)", "",
                  "Verdict shares at the cell's SFT checkpoint (*before*) and after RL (*after*)"
                  + (": each episode's last answer, then (*attempt 1*) its first." if first else "."), "",
                  f"| cell | rule | when | {head} |", "|---|---|---" + rule_sep]
        for c in cells:
            lines.append(f"| {c.cell.name} | {c.rule} | before | {_shares(c.verdicts_before, columns)} |")
            lines.append(f"| {c.cell.name} | {c.rule} | after | {_shares(c.verdicts_after, columns)} |")
            if c.first_after:
                lines.append(f"| {c.cell.name} | {c.rule} | before, attempt 1 | {_shares(c.first_before, columns)} |")
                lines.append(f"| {c.cell.name} | {c.rule} | after, attempt 1 | {_shares(c.first_after, columns)} |")
    return lines


def metric_key(text: str) -> str:
    """``text`` as an MLflow metric name (letters, digits, ``_ - . / : `` and spaces; ``=`` becomes ``:``)."""
    import re

    return re.sub(r"[^A-Za-z0-9_\-./: ]", "_", text.replace("=", ":"))


def summary_metrics(a: Analysis) -> dict[str, float]:
    """The report's headline numbers per RL setting and rule, as the sweep's parent run carries them (pure):
    the window's edges (the outermost recovering SFT lengths; -1 where no length recovers), how many lengths
    recover, and the best recovery over seeds with its interval."""
    out: dict[str, float] = {}
    for (settings, rule), by_step in a.recovery.items():
        key = metric_key(f"boundary/{rule}/{settings_label(settings).replace(', ', '/')}")
        w = a.windows[(settings, rule)]
        out[f"{key}/window_from"] = float(w.lower.inside) if w.lower else -1.0
        out[f"{key}/window_to"] = float(w.upper.inside) if w.upper else -1.0
        out[f"{key}/lengths_recovering"] = float(len(w.steps))
        step, best = max(by_step.items(), key=lambda kv: kv[1].value)
        out.update({f"{key}/best_recovery": best.value, f"{key}/best_recovery_low": best.low,
                    f"{key}/best_recovery_high": best.high, f"{key}/best_recovery_sft": float(step)})
    return out


def log_report_metrics(client, parent_run_id: str, a: Analysis, sdir: Path) -> None:
    """The summary metrics on the sweep's parent run, and on each trial's run its cell's paired gain per rule
    (value, interval, n problems), so runs can be compared in the MLflow UI."""
    client.log_batch(parent_run_id, metrics=_metrics(summary_metrics(a)))
    jobs = json.loads((sdir / "cells.json").read_text()) if (sdir / "cells.json").is_file() else {}
    for c in a.cells:
        job = jobs.get(c.cell.name)
        rid_file = Path(job).parent / "mlflow_run_id" if job else None
        if rid_file is None or not rid_file.is_file():
            continue
        d = c.diff
        client.log_batch(rid_file.read_text().strip(), metrics=_metrics({
            f"recovery/{c.rule}": d.value, f"recovery/{c.rule}/low": d.low, f"recovery/{c.rule}/high": d.high,
            f"recovery/{c.rule}/n": float(d.n), f"recovery/{c.rule}/before": c.before,
            f"recovery/{c.rule}/after": c.after,
            **({"update/ratio": c.update_ratio, "update/too_weak": float(c.too_weak)}
               if c.update_ratio is not None else {})}))


def _metrics(values: dict[str, float]) -> list:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, 0) for k, v in values.items()]


def write_report(sweep_dir: str | Path, threshold: float | None = None, log_to_mlflow: bool = True,
                 analysis: Analysis | None = None) -> list[Path]:
    """Analyse the sweep (or take ``analysis``, already made) and write (and log) the report; the files
    written. ``threshold``: default the sweep config's ``boundary.threshold``."""
    from raysweep.sweep.run import write_table

    sdir = Path(sweep_dir)
    a = analysis if analysis is not None else analyse(sdir, threshold)
    threshold = a.threshold
    out = sdir / "report"
    out.mkdir(exist_ok=True)
    files = []
    rows = [c.row() for c in a.cells]
    if rows:
        write_table(rows, out / "boundary.csv")
        files.append(out / "boundary.csv")
    from raysweep.train.trunk import write_text_atomic

    spectral_file = sdir / "spectral" / "spectral.json"
    spectral = json.loads(spectral_file.read_text()) if spectral_file.is_file() else None
    write_text_atomic(out / "report.md", markdown(a, sdir.name, threshold, spectral))
    files.append(out / "report.md")
    for rule in task_of(a.cfg.task).eval_sets:
        for draw, name in ((recovery_figure, "recovery"), (heatmap_figure, "heatmap"), (loss_figure, "loss")):
            f = draw(a, rule, out / f"{name}_{rule}.png")
            if f is not None:
                files.append(f)
    if log_to_mlflow and a.cfg.tracking.enabled and (sdir / "mlflow_run_id").is_file():
        from mlflow.tracking import MlflowClient

        from raysweep.tracking import tracking_uri

        client = MlflowClient(tracking_uri(a.cfg.tracking, a.cfg.output_dir))
        run_id = (sdir / "mlflow_run_id").read_text().strip()
        for f in files:
            client.log_artifact(run_id, str(f), "report")
        log_report_metrics(client, run_id, a, sdir)
    print(f"[report] {len(files)} file(s) in {out}", file=sys.stderr)
    return files
