"""Plots logged as MLflow artifacts: a run's accuracy curves, and a sweep's accuracy against SFT length.

The data shaping (:func:`eval_series`, :func:`train_series`, :func:`sweep_series`) is pure; the drawing
uses matplotlib's Agg backend (no display needed) and writes PNG files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence


EVAL_KINDS = ("eval", "checkpoint")  # an RL run's evaluations; a trunk's evaluated checkpoints


def eval_series(records: Iterable[dict]) -> dict[str, list[tuple[int, float, float, float]]]:
    """``{rule: [(step, accuracy, ci_low, ci_high), ...]}`` from a run's evaluation records, by step (the
    latest record of a step wins: a resumed run may have evaluated it twice)."""
    by_step: dict[int, dict] = {}
    for r in records:
        if r.get("kind") in EVAL_KINDS and isinstance(r.get("eval"), dict):
            by_step[r["step"]] = r["eval"]
    out: dict[str, list[tuple[int, float, float, float]]] = {}
    for step in sorted(by_step):
        for rule, e in by_step[step].items():
            lo, hi = e.get("ci95", (e["accuracy"], e["accuracy"]))
            out.setdefault(rule, []).append((step, e["accuracy"], lo, hi))
    return out


def train_series(records: Iterable[dict], key: str = "reward") -> list[tuple[int, float]]:
    """``[(step, value)]`` of a training metric from the ``train`` records (latest per step)."""
    by_step = {r["step"]: r[key] for r in records if r.get("kind") == "train" and key in r}
    return sorted(by_step.items())


def sweep_series(rows: Sequence[dict], rule: str) -> dict[str, list[tuple[int, float, float, float]]]:
    """For one rule: the curve of accuracy against SFT length at the start of RL (``"after SFT"``) and,
    per grid setting (all ``rl.*`` coordinates but the SFT length, and the seed), after RL.
    Rows are results-table rows; unfinished cells are left out."""
    out: dict[str, dict[int, tuple[float, float, float]]] = {}
    several_seeds = len({str(r.get("sft.seed")) for r in rows}) > 1
    for r in rows:
        if f"{rule}_acc_final" not in r:
            continue
        step = int(r["rl.sft_step"])
        seed = f" (seed {r.get('sft.seed')})" if several_seeds else ""
        setting = ", ".join(f"{k[3:]}={r[k]}" for k in sorted(r) if k.startswith("rl.") and k != "rl.sft_step")
        label = f"after RL{': ' + setting if setting else ''}{seed}"
        start = f"after SFT{seed}"
        out.setdefault(start, {})[step] = (r[f"{rule}_acc_start"], r[f"{rule}_ci_low_start"],
                                           r[f"{rule}_ci_high_start"])
        out.setdefault(label, {})[step] = (r[f"{rule}_acc_final"], r[f"{rule}_ci_low_final"],
                                           r[f"{rule}_ci_high_final"])
    return {label: [(s, *pts[s]) for s in sorted(pts)] for label, pts in out.items()}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _band(ax, series, label, band_alpha: float = 0.15, **kw):
    """A line of (x, y, low, high) points with its interval as a shaded band."""
    xs = [p[0] for p in series]
    line, = ax.plot(xs, [p[1] for p in series], marker="o", label=label, **kw)
    ax.fill_between(xs, [p[2] for p in series], [p[3] for p in series], alpha=band_alpha, color=line.get_color())


def labelled(title: str, label: str | None) -> str:
    """A figure title with the sweep's caption (``sweep.label``) on a second line."""
    return f"{title}\n{label}" if label else title


def plot_run(records: Sequence[dict], path: Path, title: str, train_metric: str = "reward",
             xlabel: str = "step") -> Path | None:
    """Accuracy (95% interval bands) per rule against ``xlabel``, and the training metric ``train_metric``
    if recorded; ``None`` when the run has no evaluation yet."""
    evals = eval_series(records)
    if not evals:
        return None
    reward = train_series(records, train_metric)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2 if reward else 1, figsize=(10 if reward else 5.5, 3.8), squeeze=False)
    ax = axes[0][0]
    for rule, series in evals.items():
        _band(ax, series, rule.upper() if rule in ("id", "ood") else rule)
    ax.set(xlabel=xlabel, ylabel="accuracy", title=title, ylim=(-0.02, 1.02))
    ax.legend()
    if reward:
        ax2 = axes[0][1]
        ax2.plot([p[0] for p in reward], [p[1] for p in reward], color="tab:green")
        ax2.set(xlabel=xlabel, ylabel=train_metric, title=f"training {train_metric}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_sweep(rows: Sequence[dict], rules: Sequence[str], path: Path, title: str) -> Path | None:
    """One panel per rule: accuracy against SFT length after SFT and after RL per grid setting; ``None``
    when no cell has finished."""
    panels = [(rule, sweep_series(rows, rule)) for rule in rules]
    if not any(series for _, series in panels):
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (rule, series) in zip(axes[0], panels):
        for label, pts in series.items():
            _band(ax, pts, label, linestyle="--" if label.startswith("after SFT") else "-")
        ax.set(xlabel="SFT steps", ylabel="accuracy", ylim=(-0.02, 1.02),
               title=f"{title}: {rule.upper() if rule in ('id', 'ood') else rule}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
