"""The report's figures (PNG, matplotlib Agg): the paper-style recovery figure, the recovery heatmap, and
the evaluation loss against OOD accuracy along the trunk."""

from __future__ import annotations

from pathlib import Path

from raysweep.tasks.protocol import task_of
from raysweep.boundary.analyse import Analysis, settings_label
from raysweep.plots import _band, _pyplot, labelled


def _rule_name(rule: str) -> str:
    return rule.upper() if rule in ("id", "ood") else rule


def recovery_figure(a: Analysis, rule: str, path: Path) -> Path | None:
    """Accuracy after SFT (each trunk's curve, 95% band) and after RL (per setting, mean over seeds with
    the paired interval of the recovery added to the mean start) against SFT length; the recovery window
    of each setting shaded, each trunk's peak marked."""
    keys = [k for k in a.recovery if k[1] == rule]
    if not keys:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    tops = []
    for (seed, r), curve in sorted(a.curves.items()):
        if r != rule:
            continue
        tops += [p[3] for p in curve]
        _band(ax, curve, f"after SFT (seed {seed})" if len(a.cfg.sft.seeds) > 1 else "after SFT",
              color="black", linestyle="--", band_alpha=0.08)
        p = a.peaks[(seed, r)]
        ax.plot([p.step], [p.accuracy], marker="*", markersize=14, color="gold", markeredgecolor="black",
                linestyle="none", label="SFT peak" if seed == a.cfg.sft.seeds[0] else None)
    start = {}
    for c in a.cells:
        if c.rule == rule:
            start.setdefault((c.cell.settings, c.cell.sft_step), []).append(c.before)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, key in enumerate(sorted(keys, key=str)):
        color = colors[i % len(colors)]
        pts = []
        for step, d in a.recovery[key].items():
            base = sum(start[(key[0], step)]) / len(start[(key[0], step)])
            pts.append((step, base + d.value, base + d.low, base + d.high))
        tops += [p[3] for p in pts]
        _band(ax, pts, f"after RL: {settings_label(key[0])}", color=color)
        w = a.windows[key]
        for run in w.runs:
            ax.axvspan(run[0], run[-1] if run[-1] != run[0] else run[0] + 1e-9, color=color, alpha=0.12)
    ax.set(xlabel="SFT steps (RL starts here)", ylabel=f"{_rule_name(rule)} accuracy",
           title=labelled(f"{_rule_name(rule)}: where RL recovers (shaded: significant recovery)", a.cfg.sweep.label))
    ax.set_ylim(-0.02, min(1.02, max(0.1, 1.25 * max(tops, default=0.0) + 0.02)))  # room to read low accuracies
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def heatmap_figure(a: Analysis, rule: str, path: Path) -> Path | None:
    """Recovery (after − before, mean over seeds) over SFT length × RL setting; significant cells marked."""
    keys = sorted((k for k in a.recovery if k[1] == rule), key=str)
    if not keys:
        return None
    steps = sorted({s for k in keys for s in a.recovery[k]})
    grid = [[a.recovery[k].get(s).value if s in a.recovery[k] else float("nan") for s in steps] for k in keys]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(steps), 1.4 + 0.5 * len(keys)))
    lim = max([abs(v) for row in grid for v in row if v == v] + [0.01])
    im = ax.imshow(grid, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    for i, k in enumerate(keys):
        for j, s in enumerate(steps):
            d = a.recovery[k].get(s)
            if d is not None:
                mark = "*" if d.significant_gain else ("-" if d.significant_loss else "")
                ax.text(j, i, f"{d.value:+.2f}{mark}", ha="center", va="center", fontsize=7,
                        color="white" if abs(d.value) > 0.6 * lim else "black")
    ax.set_xticks(range(len(steps)), [str(s) for s in steps])
    ax.set_yticks(range(len(keys)), [settings_label(k[0]) for k in keys], fontsize=7)
    ax.set(xlabel="SFT steps", title=labelled(f"{_rule_name(rule)} recovery by RL (* significant gain, - loss)",
                                         a.cfg.sweep.label))
    fig.colorbar(im, ax=ax, label="after RL − after SFT")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def loss_figure(a: Analysis, rule: str, path: Path) -> Path | None:
    """Along each trunk: ``rule`` accuracy and the evaluation loss (second axis): does the loss see the peak?"""
    seeds = [s for s in a.cfg.sft.seeds if (s, rule) in a.curves and a.losses.get(s)]
    if not seeds:
        return None
    loss_rule = _rule_name(task_of(a.cfg.task).eval_sets[0])  # the loss a practitioner watches: held-out ID answers
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax2 = ax.twinx()
    for s in seeds:
        curve = a.curves[(s, rule)]
        _band(ax, curve, f"{_rule_name(rule)} accuracy (seed {s})")
        loss = sorted(a.losses[s].items())
        ax2.plot([p[0] for p in loss], [p[1] for p in loss], color="tab:red", marker="s", linestyle=":",
                 label=f"{loss_rule} evaluation loss (seed {s})")
    ax.set(xlabel="SFT steps", ylabel=f"{_rule_name(rule)} accuracy",
           title=labelled("accuracy vs evaluation loss along SFT", a.cfg.sweep.label))
    ax2.set_ylabel(f"{loss_rule} evaluation loss (expert answers)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
