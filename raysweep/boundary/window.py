"""The recovery window and the OOD peak, pure.

The window (per RL setting and rule) is the set of SFT lengths from which RL raises accuracy
significantly: the lower end of the difference's 95% interval is above ``threshold`` (default 0). Its
edges are known only to the grid's resolution, so each edge comes with the bracket of neighbouring
lengths it lies between; an edge at the end of the grid is open (the window may go on beyond it).

A length whose RL was too weak to test recovery (``weak``: RL update / SFT drift under
``boundary.min_rl_update``) and that does not recover says nothing: it never closes an edge (the edge beside it is
open, with that length named) and never counts as "does not recover".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet as Set, Mapping, Sequence

from raysweep.boundary.metrics import Diff


@dataclass(frozen=True)
class Edge:
    """One edge of the window. ``inside``: the outermost recovering length on this side; ``outside``: the
    neighbouring length that does not recover (None: the grid ends here, the edge is open)."""

    inside: int
    outside: int | None
    weak: int | None = None  # the neighbouring length whose RL was too weak to test (the edge is then open)

    @property
    def closed(self) -> bool:
        return self.outside is not None

    @property
    def bracket(self) -> tuple[int, int] | None:
        """The two lengths the edge lies between, in increasing order (None when open)."""
        if self.outside is None:
            return None
        return (min(self.inside, self.outside), max(self.inside, self.outside))


@dataclass(frozen=True)
class Window:
    steps: tuple[int, ...]  # every SFT length that recovers
    runs: tuple[tuple[int, ...], ...]  # contiguous runs of them along the grid (more than one: a gappy window)
    lower: Edge | None  # of the main run (the longest; the earliest among equals)
    upper: Edge | None

    @property
    def empty(self) -> bool:
        return not self.steps

    def describe(self) -> str:
        if self.empty:
            return "no SFT length recovers"
        lo, hi = self.lower, self.upper
        assert lo is not None and hi is not None
        lower = (f"between {lo.bracket[0]} and {lo.bracket[1]}" if lo.closed else
                 f"at or before {lo.inside} (RL from {lo.weak} too weak to test)" if lo.weak is not None else
                 f"at or before {lo.inside} (grid start)")
        upper = (f"between {hi.bracket[0]} and {hi.bracket[1]}" if hi.closed else
                 f"at or after {hi.inside} (RL from {hi.weak} too weak to test)" if hi.weak is not None else
                 f"at or after {hi.inside} (grid end)")
        gaps = f"; {len(self.runs)} separate runs" if len(self.runs) > 1 else ""
        return f"recovers from SFT length {lo.inside} to {hi.inside} (lower edge {lower}, upper edge {upper}{gaps})"


def recovery_window(points: Mapping[int, Diff], threshold: float = 0.0, weak: Set[int] = frozenset()) -> Window:
    """The window over the grid ``{sft_length: difference after − before}``; ``weak``: lengths whose RL was too
    weak to test recovery (one that does not recover closes no edge)."""
    grid = sorted(points)
    good = [s for s in grid if points[s].low > threshold]
    runs: list[list[int]] = []
    for i, s in enumerate(grid):
        if s in good:
            if runs and i > 0 and grid[i - 1] == runs[-1][-1]:
                runs[-1].append(s)
            else:
                runs.append([s])
    if not runs:
        return Window((), (), None, None)
    main = max(runs, key=len)  # max() keeps the first of equals: the earliest

    def edge(inside: int, j: int) -> Edge:
        if not 0 <= j < len(grid):
            return Edge(inside, None)
        return Edge(inside, None, grid[j]) if grid[j] in weak else Edge(inside, grid[j])

    i0, i1 = grid.index(main[0]), grid.index(main[-1])
    return Window(tuple(good), tuple(tuple(r) for r in runs), edge(main[0], i0 - 1), edge(main[-1], i1 + 1))


@dataclass(frozen=True)
class Peak:
    """The trunk's best accuracy along SFT, and what a loss-based choice of checkpoint would have picked."""

    step: int
    accuracy: float
    low: float
    high: float
    loss_step: int | None  # the SFT length with the lowest evaluation loss (None: no losses recorded)
    loss_step_accuracy: float | None

    @property
    def loss_picks_peak(self) -> bool | None:
        """Would picking the checkpoint by loss have found the peak (the same length, or one whose
        accuracy is inside the peak's interval)?"""
        if self.loss_step is None or self.loss_step_accuracy is None:
            return None
        return self.loss_step == self.step or self.loss_step_accuracy >= self.low


def find_peak(curve: Sequence[tuple[int, float, float, float]], losses: Mapping[int, float] | None = None) -> Peak:
    """``curve``: (sft_length, accuracy, low, high) along a trunk; ``losses``: evaluation loss by length.
    The peak is the highest accuracy (the earliest among equals)."""
    if not curve:
        raise ValueError("an empty curve has no peak")
    best = max(curve, key=lambda p: (p[1], -p[0]))
    acc = {p[0]: p[1] for p in curve}
    loss_step = None
    if losses:
        usable = {s: v for s, v in losses.items() if s in acc and v is not None}
        if usable:
            loss_step = min(usable, key=lambda s: (usable[s], s))
    return Peak(best[0], best[1], best[2], best[3], loss_step, acc.get(loss_step) if loss_step is not None else None)
