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

from raysweep.boundary.analyse import Analysis, analyse, mean_verdict_shares, settings_label, summary_text
from raysweep.boundary.figures import heatmap_figure, loss_figure, recovery_figure
from raysweep.boundary.findings import markdown as findings_markdown
from raysweep.boundary.findings import paper_findings


def _fmt(v) -> str:
    return "" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def markdown(a: Analysis, sweep_name: str, threshold: float, spectral: dict | None = None) -> str:
    caption = [f"**{a.cfg.sweep.label}**", ""] if a.cfg.sweep.label else []
    lines = [f"# Recovery report: {sweep_name}", "", *caption,
             f"Model `{a.cfg.model.name}`; SFT lengths {list(a.cfg.sft.checkpoints)}, seeds {list(a.cfg.sft.seeds)}; "
             f"{a.cfg.eval.n} evaluation hands per rule. A length is in the window when the 95% interval of "
             f"RL's paired gain (after RL − after SFT, same hands) lies above {threshold:g}.", "",
             "## Findings", ""]
    lines += [f"- {line}" for line in summary_text(a).splitlines()]
    lines += ["", "## The paper's four findings", "", "Checked as `raysweep.boundary.findings` defines them (thresholds "
              "in its docstring); the spectral one needs `spectral.in_sweep` or `raysweep spectral --sweep`.", "",
              findings_markdown(paper_findings(a, spectral)).rstrip()]
    lines += ["", "## Recovery per SFT length (mean over seeds)", "",
              "| rule | RL setting | SFT length | recovery | 95% interval | seeds |", "|---|---|---:|---:|---|---:|"]
    for (settings, rule), by_step in sorted(a.recovery.items(), key=lambda kv: (kv[0][1], str(kv[0][0]))):
        for step, d in by_step.items():
            star = " **\\***" if d.low > threshold else ""
            lines.append(f"| {rule} | {settings_label(settings)} | {step} | {d.value:+.3f}{star} | "
                         f"[{d.low:+.3f}, {d.high:+.3f}] | {d.n} |")
    lines += verdict_lines(a)
    lines += ["", "## Cells", "", "| cell | rule | before | after | recovery [95%] | ratio [95%] |",
              "|---|---|---:|---:|---|---|"]
    for c in a.cells:
        r = c.row()
        ratio = (f"{r['ratio']:+.2f} [{r['ratio_low']:+.2f}, {r['ratio_high']:+.2f}]" if r["ratio"] is not None
                 else "n/a (SFT lost nothing)")
        lines.append(f"| {c.cell.name} | {c.rule} | {c.before:.3f} | {c.after:.3f} | "
                     f"{c.diff.value:+.3f} [{c.diff.low:+.3f}, {c.diff.high:+.3f}] | {ratio} |")
    return "\n".join(lines) + "\n"


def verdict_lines(a: Analysis) -> list[str]:
    """The report's table of what the answers got wrong along SFT, per rule other than the training rule
    (mean over seeds): whether a fall in OOD accuracy comes with more *wrong numbers* (values that are not
    the cards' under the rule) or more *wrong value* (the arithmetic failing)."""
    lines: list[str] = []
    for rule in a.cfg.task.eval_rules:
        if rule == a.cfg.task.train_rule:
            continue
        by_seed = [v for (seed, r), v in sorted(a.verdicts.items()) if r == rule]
        if not by_seed:
            continue
        if not lines:
            lines += ["", "## What the answers got wrong along SFT (mean over seeds)", "",
                      "Share of evaluation answers per verdict: *wrong numbers* (`wrong_cards`: the formula's "
                      "numbers are not the cards' values under the rule: the ID rule's values on OOD cards, a "
                      "misread rule, or numbers made up), *wrong value* (the right numbers, the wrong result), "
                      "*malformed*.", "",
                      "| rule | SFT length | correct | wrong numbers | wrong value | malformed | seeds |",
                      "|---|---:|---:|---:|---:|---:|---:|"]
        for step, (shares, k) in mean_verdict_shares(by_seed).items():
            cols = " | ".join(f"{shares.get(v, 0.0):.3f}" for v in ("correct", "wrong_cards", "wrong_value", "malformed"))
            lines.append(f"| {rule} | {step} | {cols} | {k} |")
    return lines


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
    for rule in a.cfg.task.eval_rules:
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
    print(f"[report] {len(files)} file(s) in {out}", file=sys.stderr)
    return files
