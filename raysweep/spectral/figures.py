"""Spectral figures (PNG): per-block angles and singular-value change per pair, per module type, and along
a trunk beside OOD accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from raysweep.plots import _band, _pyplot
from raysweep.spectral.maths import fraction_key


def main_fraction(fractions: Sequence[float]) -> float:
    """The fraction the headline figures use: 0.1 if analysed, else the median one."""
    return 0.1 if 0.1 in fractions else sorted(fractions)[len(fractions) // 2]


def _series(table: Sequence[dict], pair_ids: Sequence[int], x: str, y: str) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = {p: [] for p in pair_ids}
    for r in table:
        if r["pair"] in out:
            out[r["pair"]].append((r[x], r[y]))
    return {p: sorted(v) for p, v in out.items()}


def layers_figure(by_layer: Sequence[dict], pair_ids: Sequence[int], labels: dict[int, str], fraction: float,
                  path: Path, title: str) -> Path | None:
    """Mean principal angle (top-k, k = fraction of the rank) and relative singular-value change per
    block, one line per pair (means over the block's module types)."""
    if not pair_ids:
        return None
    key = fraction_key(fraction)
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for p, pts in _series(by_layer, pair_ids, "layer", f"angle_mean.top{key}").items():
        a1.plot([x for x, _ in pts], [y for _, y in pts], marker=".", label=labels[p])
    for p, pts in _series(by_layer, pair_ids, "layer", "sv_rel_change").items():
        a2.plot([x for x, _ in pts], [100 * y for _, y in pts], marker=".", label=labels[p])
    a1.set(xlabel="block", ylabel=f"mean principal angle, top {fraction:g} of rank (deg)",
           title=f"{title}: singular vectors rotate")
    a2.set(xlabel="block", ylabel="relative singular-value change (%)", title=f"{title}: singular values")
    from matplotlib.ticker import MaxNLocator

    for ax in (a1, a2):
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    a1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def modules_figure(by_module: Sequence[dict], pair_ids: Sequence[int], labels: dict[int, str], fraction: float,
                   modules: Sequence[str], path: Path, title: str) -> Path | None:
    """Grouped bars per module type: mean angle and singular-value change, one bar per pair."""
    if not pair_ids:
        return None
    key = fraction_key(fraction)
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(pair_ids)
    for j, p in enumerate(pair_ids):
        rows = {r["module"]: r for r in by_module if r["pair"] == p}
        xs = [i + j * width for i in range(len(modules))]
        a1.bar(xs, [rows[m][f"angle_mean.top{key}"] if m in rows else 0 for m in modules], width, label=labels[p])
        a2.bar(xs, [100 * rows[m]["sv_rel_change"] if m in rows else 0 for m in modules], width, label=labels[p])
    for ax in (a1, a2):
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(modules))], modules, rotation=30, fontsize=8)
    a1.set(ylabel=f"mean principal angle, top {fraction:g} (deg)", title=f"{title}: per module type")
    a2.set(ylabel="relative singular-value change (%)", title=f"{title}: per module type")
    a1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def trunk_figure(points: Sequence[dict], fractions: Sequence[float], curve: Sequence[tuple] | None,
                 rule: str, path: Path, title: str) -> Path | None:
    """Along one trunk: mean angle to the base per fraction and singular-value change (left axis scale:
    degrees / percent), with ``rule`` accuracy and its 95% band on the right axis."""
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    xs = [p["sft_step"] for p in points]
    shades = plt.cm.viridis([i / max(1, len(fractions) - 1) * 0.85 for i in range(len(fractions))])
    for f, color in zip(fractions, shades):
        ax.plot(xs, [p[f"angle_mean.top{fraction_key(f)}"] for p in points], marker="o", color=color,
                label=f"angle, top {f:g} (deg)")
    ax.plot(xs, [100 * p["sv_rel_change"] for p in points], marker="s", color="black", linestyle=":",
            label="singular-value change (%)")
    ax.set(xlabel="SFT steps", ylabel="degrees / percent", title=title)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="upper left")
    if curve:
        ax2 = ax.twinx()
        _band(ax2, curve, f"{rule.upper()} accuracy", color="tab:red", band_alpha=0.1, linestyle="--")
        ax2.set_ylabel(f"{rule.upper()} accuracy", color="tab:red")
        ax2.set_ylim(-0.02, min(1.02, max(0.1, 1.25 * max(p[3] for p in curve) + 0.02)))
        ax2.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
