"""Which cell to run next to bracket the recovery window's edges with few RL runs (pure).

The question is not "where is recovery largest" (what a maximising sampler such as TPE would chase: it
piles trials into the window's interior) but "between which two neighbouring SFT lengths does recovery
switch on, and where does it switch off". For each RL setting, along the ordered SFT lengths, that is a
search for two sign changes of a (noisy) label — *recovers* means the 95% interval of RL's gain lies
above the threshold. The policy:

1. **Find the window.** The first probe goes to the middle of the stretch behind the trunk's peak
   (where SFT lost ground) or, if another RL setting already has a window, to that window's lower
   edge. If it does not recover, the next probes split the largest unexplored gaps (coarse-to-fine),
   preferring lengths after the peak.
2. **Bracket each edge by bisection** between the outermost recovering length and the nearest length
   known not to recover (or the grid's end). An edge is done when they are neighbours, or when the
   window reaches the grid's end (an open edge). When another setting's window is known, the lengths
   at its edges are tried first (RL settings often share a window): confirmed in two probes per edge.
3. A setting is done when both edges are done, or when every length was tried without recovery.

Trials may run concurrently: cells in flight (pending) are never proposed again; when only in-flight
cells could tell what to do next, the answer is to wait. The window is assumed to be one interval;
where recovery is gappy, bisection reports one of its runs (the full grid shows all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence


@dataclass(frozen=True)
class Decision:
    kind: str  # "run" | "wait" | "done"
    setting: str | None = None
    length: int | None = None


@dataclass(frozen=True)
class SettingState:
    """What is known of one setting's window, as grid indices."""

    inside: tuple[int, int] | None  # (first, last) recovering index seen
    lower_out: int | None  # largest non-recovering index below ``inside`` (None: none seen)
    upper_out: int | None  # smallest non-recovering index above ``inside``

    def lower_done(self, m: int) -> bool:
        return self.inside is not None and (self.inside[0] == 0 or self.lower_out == self.inside[0] - 1)

    def upper_done(self, m: int) -> bool:
        return self.inside is not None and (self.inside[1] == m - 1 or self.upper_out == self.inside[1] + 1)


def setting_state(labels: Mapping[int, bool]) -> SettingState:
    """``labels``: grid index -> recovers, for the tested lengths of one setting."""
    good = sorted(i for i, v in labels.items() if v)
    if not good:
        return SettingState(None, None, None)
    lo, hi = good[0], good[-1]
    below = [i for i, v in labels.items() if not v and i < lo]
    above = [i for i, v in labels.items() if not v and i > hi]
    return SettingState((lo, hi), max(below) if below else None, min(above) if above else None)


def peak_index(curve: Sequence[float]) -> int:
    """Index of the trunk's highest accuracy (the earliest among equals)."""
    return max(range(len(curve)), key=lambda i: (curve[i], -i)) if curve else 0


def _gap_probe(m: int, taken: set[int], prefer_from: int) -> int | None:
    """The untaken index farthest from every taken one (coarse-to-fine), preferring indices at or after
    ``prefer_from`` (behind the trunk's peak), then the earlier."""
    free = [i for i in range(m) if i not in taken]
    if not free:
        return None

    def dist(i: int) -> int:
        return min((abs(i - t) for t in taken), default=m)

    return max(free, key=lambda i: (i >= prefer_from, dist(i), -i))


def _first_probe(m: int, peak: int) -> int:
    start = peak + 1 if peak + 1 < m else 0  # the post-peak stretch, or the whole grid if none
    return (start + m - 1) // 2


def setting_probes(m: int, labels: Mapping[int, bool], pending: set[int], peak: int,
                   hint: tuple[int, int] | None = None) -> tuple[list[int], bool]:
    """Next useful probes (grid indices, best first) for one setting, and whether the setting is done.

    ``hint``: another setting's window (first, last index) to try first."""
    taken = set(labels) | pending
    st = setting_state(labels)
    if st.inside is None:
        if not labels and not pending and hint is None:
            return [_first_probe(m, peak)], False
        if hint is not None and all(i in taken for i in range(hint[0], hint[1] + 1)):
            hint = None  # the other setting's window does not recover here
        if hint is not None:  # the other window's lower edge first: if it recovers, its edges come next
            probe = hint[0] if hint[0] not in taken else min(
                (i for i in range(hint[0], hint[1] + 1) if i not in taken),
                key=lambda i: (abs(i - (hint[0] + hint[1]) / 2), i))
            return [probe], False
        probe = _gap_probe(m, taken, peak + 1 if peak + 1 < m else 0)
        if probe is None:
            return [], not pending  # all tried: no window (once the in-flight ones are back)
        return [probe], False
    probes: list[int] = []
    lo, hi = st.inside
    if not st.lower_done(m):
        j = st.lower_out if st.lower_out is not None else -1
        if hint is not None and j < hint[0] < lo and hint[0] not in taken:
            probes.append(hint[0])  # the other window's lower edge: expected to recover
        elif hint is not None and hint[0] == lo and j < lo - 1 and lo - 1 not in taken:
            probes.append(lo - 1)  # ... and its neighbour below: expected not to
        else:
            cands = [i for i in range(j + 1, lo) if i not in taken]
            if cands:
                mid = (j + lo) // 2
                probes.append(min(cands, key=lambda i: (abs(i - mid), i)))
    if not st.upper_done(m):
        k = st.upper_out if st.upper_out is not None else m
        if hint is not None and hi < hint[1] < k and hint[1] not in taken:
            probes.append(hint[1])
        elif hint is not None and hint[1] == hi and hi + 1 < k and hi + 1 not in taken:
            probes.append(hi + 1)
        else:
            cands = [i for i in range(hi + 1, k) if i not in taken]
            if cands:
                mid = (hi + k + 1) // 2
                probes.append(min(cands, key=lambda i: (abs(i - mid), i)))
    done = st.lower_done(m) and st.upper_done(m)
    return probes, done


def next_cell(lengths: Sequence[int], settings: Sequence[str], recovers: Mapping[tuple[str, int], bool],
              pending: set[tuple[str, int]], trunk_curve: Sequence[float] | None = None) -> Decision:
    """The next (setting, SFT length) to run, or wait (only cells in flight can tell), or done.

    ``recovers``: finished cells -> whether RL's gain is significant there; ``pending``: cells in flight;
    ``trunk_curve``: the trunk's accuracy (the rule searched) at each length, for the first probe."""
    lengths = sorted(lengths)
    m = len(lengths)
    idx = {length: i for i, length in enumerate(lengths)}
    peak = peak_index(trunk_curve) if trunk_curve else m // 2 - 1
    labels = {s: {idx[length]: v for (s2, length), v in recovers.items() if s2 == s and length in idx}
              for s in settings}
    inflight = {s: {idx[length] for (s2, length) in pending if s2 == s and length in idx} for s in settings}
    windows = {s: setting_state(labels[s]).inside for s in settings}
    best: list[tuple[int, int, str, int]] = []
    for order, s in enumerate(settings):
        hint = next((w for s2, w in windows.items() if s2 != s and w is not None), None)
        probes, _ = setting_probes(m, labels[s], inflight[s], peak, hint)
        if probes:
            best.append((len(inflight[s]), order, s, probes[0]))
    if best:
        _, _, s, i = min(best)
        return Decision("run", s, lengths[i])
    return Decision("wait") if pending else Decision("done")


def replay(lengths: Sequence[int], settings: Sequence[str], observe, trunk_curve: Sequence[float] | None = None,
           concurrency: int = 1, limit: int | None = None) -> list[tuple[str, int, bool]]:
    """Run the policy against ``observe(setting, length) -> recovers`` (a recorded or synthetic surface)
    with ``concurrency`` cells in flight, finishing them in launch order; the cells run, in order, with
    their outcomes. ``limit`` caps the number of cells (default: the grid's size)."""
    limit = limit if limit is not None else len(lengths) * len(settings)
    done: dict[tuple[str, int], bool] = {}
    order: list[tuple[str, int, bool]] = []
    flight: list[tuple[str, int]] = []
    while len(order) < limit:
        while len(flight) < concurrency and len(order) + len(flight) < limit:
            d = next_cell(lengths, settings, done, set(flight), trunk_curve)
            if d.kind != "run":
                break
            flight.append((d.setting, d.length))
        if not flight:
            break
        s, length = flight.pop(0)
        done[(s, length)] = bool(observe(s, length))
        order.append((s, length, done[(s, length)]))
    return order
