"""Which of the paper's four findings a sweep shows: checks over its recovery analysis and its spectral
summary (pure: the inputs are an :class:`Analysis` and the ``spectral.json`` dict), each verdict with the
numbers behind it. The thresholds are the reproduction targets of the CPU testbeds:

1. OOD accuracy rises from the base to a peak in the first ``early`` share of the trunk, then falls
   significantly (the paired difference last length − peak, mean over seeds, has its 95% interval
   below 0); a peak at the base itself (no rise) with a fall is "partly";
2. RL from some SFT length where SFT had lost OOD accuracy recovers at least ``half`` of the loss, with a
   significant gain (mean over seeds);
3. the recovery window has a closed edge: on at least one side, RL does not recover;
4. singular values move little (relative change at most ``sv_share`` of the weights' relative change)
   while principal angles grow along the trunk (Spearman ρ with SFT length >= 0.8) and track OOD after
   its peak (ρ(angle, OOD accuracy) <= -0.5 over lengths from the peak on, mean over seeds).

Cells whose RL was too weak to test recovery (RL update / SFT drift under ``boundary.min_rl_update``) and that do
not recover are never counted as "does not recover": finding 2 leaves their lengths out (not measured when none is
left), and they close no edge of the window (finding 3).

A peak picked as the maximum of a noisy curve is biased upwards; the fall is measured against it, so
finding 1 needs the fall's interval, not the point estimate, below zero.
"""

from __future__ import annotations

from dataclasses import dataclass

from raysweep.boundary.analyse import Analysis, settings_label
from raysweep.boundary.metrics import over_seeds
from raysweep.spectral.maths import spearman

APPEARED, PARTLY, ABSENT, UNMEASURED = "appeared", "partly", "did not appear", "not measured"


@dataclass(frozen=True)
class Finding:
    number: int
    claim: str
    verdict: str
    evidence: str


def peak_then_fall(a: Analysis, rule: str, early: float = 0.4) -> Finding:
    claim = f"{rule.upper()} accuracy peaks in the first {early:.0%} of the trunk, then falls significantly"
    seeds = [s for s in a.cfg.sft.seeds if (s, rule) in a.peaks and (s, rule) in a.falls]
    if not seeds:
        return Finding(1, claim, UNMEASURED, "no finished trunk evaluation")
    last = max(a.cfg.sft.checkpoints)
    peaks = {s: a.peaks[(s, rule)] for s in seeds}
    base = {s: a.curves[(s, rule)][0][1] for s in seeds}
    fall = over_seeds([a.falls[(s, rule)] for s in seeds])
    is_early = all(p.step <= early * last for p in peaks.values())
    rose = all(p.step > 0 and p.accuracy > base[s] for s, p in peaks.items())  # a rise from the base, as in the paper
    evidence = (f"peak at SFT length {', '.join(str(peaks[s].step) for s in seeds)} of {last} (seeds {seeds}); "
                f"peak {', '.join(f'{peaks[s].accuracy:.3f}' for s in seeds)} vs base "
                f"{', '.join(f'{base[s]:.3f}' for s in seeds)}; length {last} − peak = {fall.value:+.3f} "
                f"[{fall.low:+.3f}, {fall.high:+.3f}] (paired, mean over {len(seeds)} seed(s))")
    flat = all(max(c[1] for c in a.curves[(s, rule)]) == min(c[1] for c in a.curves[(s, rule)]) for s in seeds)
    if flat:
        verdict, evidence = ABSENT, f"flat: {rule.upper()} accuracy {base[seeds[0]]:.3f} at every SFT length; " + evidence
    elif is_early and rose and fall.significant_loss:
        verdict = APPEARED
    else:
        verdict = PARTLY if fall.significant_loss or (is_early and rose) else ABSENT
        if not rose:
            evidence += "; no rise: the peak is the base model itself"
    return Finding(1, claim, verdict, evidence)


def recovers_half(a: Analysis, rule: str, half: float = 0.5) -> Finding:
    claim = f"RL from mid-trunk checkpoints recovers at least {half:.0%} of the lost {rule.upper()} accuracy"
    best = None
    weak = []
    for (settings, r), by_step in a.recovery.items():
        if r != rule:
            continue
        for step, d in by_step.items():
            if step in a.weak.get((settings, r), ()):
                weak.append(f"{step} ({settings_label(settings)})")
                continue  # too weak to test, and no recovery: says nothing either way
            cells = [c for c in a.cells if c.rule == rule and c.cell.settings == settings and c.cell.sft_step == step]
            lost = sum(a.peaks[(c.cell.seed, rule)].accuracy - c.before for c in cells
                       if (c.cell.seed, rule) in a.peaks) / max(len(cells), 1)
            if lost <= 0.0 or step <= min(p.step for (s, rr), p in a.peaks.items() if rr == rule):
                continue
            share = d.value / lost
            key = (d.significant_gain and share >= half, share)
            if best is None or key > best[0]:
                best = (key, settings, step, d, lost, share)
    weak_note = (f"; RL too weak to test recovery (RL update / SFT drift under {a.cfg.boundary.min_rl_update:g}) "
                 f"from SFT length {', '.join(weak)}, not counted" if weak else "")
    if best is None:
        return Finding(2, claim, UNMEASURED, "no RL cell after the peak where SFT had lost accuracy" + weak_note)
    (ok, _), settings, step, d, lost, share = best
    evidence = (f"best: from SFT length {step} ({settings_label(settings)}): gain {d.value:+.3f} "
                f"[{d.low:+.3f}, {d.high:+.3f}] of {lost:.3f} lost = {share:.0%} (mean over {d.n} seed(s))"
                + weak_note)
    verdict = APPEARED if ok else (PARTLY if d.significant_gain else ABSENT)
    return Finding(2, claim, verdict, evidence)


def one_side_fails(a: Analysis, rule: str) -> Finding:
    claim = "on at least one side of the recovery window, RL does not recover"
    windows = {k: w for k, w in a.windows.items() if k[1] == rule}
    if not windows:
        return Finding(3, claim, UNMEASURED, "no finished RL cells")
    closed = {k: w for k, w in windows.items() if not w.empty and (w.lower.closed or w.upper.closed)}
    described = "; ".join(f"{settings_label(k[0])}: {w.describe()}" for k, w in sorted(windows.items(), key=str))
    weak = {k: sorted(a.weak.get(k, ())) for k in windows if a.weak.get(k)}
    if weak:
        described += "; too weak to test (not counted): " + "; ".join(
            f"{settings_label(k[0])}: SFT {', '.join(map(str, v))}" for k, v in sorted(weak.items(), key=str))
    if closed:
        return Finding(3, claim, APPEARED, described)
    return Finding(3, claim, ABSENT, described)


def spectral_rotation(a: Analysis, spectral: dict | None, rule: str, sv_share: float = 0.25,
                      grow: float = 0.8, track: float = -0.5) -> Finding:
    claim = ("singular values move little while principal angles grow along SFT and track "
             f"{rule.upper()} accuracy after its peak")
    if not spectral or not spectral.get("pairs"):
        return Finding(4, claim, UNMEASURED, "no spectral analysis in this sweep (spectral.in_sweep)")
    key = next((k for k in spectral["pairs"][0] if k == "angle_mean.top0.1"), None) or \
        next(k for k in spectral["pairs"][0] if k.startswith("angle_mean.top"))
    parts, ok = [], {"values": [], "grow": [], "track": []}
    for seed in a.cfg.sft.seeds:
        pts = sorted((p for p in spectral["pairs"] if p["kind"] == "trunk" and p["seed"] == seed),
                     key=lambda p: p["sft_step"])
        if len(pts) < 2 or (seed, rule) not in a.curves:
            continue
        last = pts[-1]
        share = last["sv_rel_change"] / max(last["w_rel_change"], 1e-30)
        rho_grow = spearman([p["sft_step"] for p in pts], [p[key] for p in pts])
        curve = {s: acc for s, acc, _, _ in a.curves[(seed, rule)]}
        peak = a.peaks[(seed, rule)].step
        after = [p for p in pts if p["sft_step"] >= peak and p["sft_step"] in curve]
        rho_track = spearman([p[key] for p in after], [curve[p["sft_step"]] for p in after]) if len(after) >= 3 else None
        ok["values"].append(share <= sv_share)
        ok["grow"].append(rho_grow is not None and rho_grow >= grow)
        if rho_track is not None and rho_track == rho_track:
            ok["track"].append(rho_track)
        parts.append(f"seed {seed}: at length {last['sft_step']} values changed {last['sv_rel_change']:.2%} vs weights "
                     f"{last['w_rel_change']:.2%}, {key} {last[key]:.3f}°, ρ(angle, length) {rho_grow:+.2f}, "
                     f"ρ(angle, {rule.upper()}) from the peak on "
                     + ("n/a (< 3 lengths)" if rho_track is None else f"{rho_track:+.2f}"))
    if not parts:
        return Finding(4, claim, UNMEASURED, "no trunk with two or more analysed lengths")
    track_mean = sum(ok["track"]) / len(ok["track"]) if ok["track"] else None
    checks = [all(ok["values"]), all(ok["grow"]), track_mean is not None and track_mean <= track]
    verdict = APPEARED if all(checks) else (PARTLY if any(checks) else ABSENT)
    evidence = "; ".join(parts) + (f"; mean ρ(angle, {rule.upper()}) after the peak {track_mean:+.2f}"
                                   if track_mean is not None else "")
    return Finding(4, claim, verdict, evidence)


def paper_findings(a: Analysis, spectral: dict | None, rule: str | None = None) -> list[Finding]:
    rule = rule or a.cfg.boundary.rule
    return [peak_then_fall(a, rule), recovers_half(a, rule), one_side_fails(a, rule),
            spectral_rotation(a, spectral, rule)]


def markdown(findings: list[Finding]) -> str:
    lines = ["| # | finding | verdict | evidence |", "|---:|---|---|---|"]
    lines += [f"| {f.number} | {f.claim} | **{f.verdict}** | {f.evidence} |" for f in findings]
    return "\n".join(lines) + "\n"
