"""The sweep's live view: one line per cell (state, SFT length, grid settings, step, latest ID/OOD; with
``task.attempts`` > 1 each accuracy is within the last attempt, its attempt-1 accuracy beside it as ``@1``).

Read from the RL runs' own files (``results.jsonl``, ``final/manifest.json``), not from Tune, so the view
means the same after a restart and on a cluster (the run directories are on shared storage).
:func:`cell_status` and :func:`render` are pure; :class:`LiveView` is the thread that prints while the
Tune experiment runs.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from raysweep.sweep.plan import Cell
from raysweep.train import trunk as T


@dataclass(frozen=True)
class CellStatus:
    state: str  # "pending" (nothing on disk), "running" (records, not finished), "finished"
    step: int = 0  # last training step recorded
    eval_step: int | None = None  # step of the latest evaluation
    acc: tuple[tuple[str, float], ...] = ()  # (rule, accuracy) of that evaluation
    step_seconds: float | None = None
    first: tuple[tuple[str, float], ...] = ()  # (rule, accuracy at attempt 1) when it evaluated > 1 attempt


def cell_status(records: Iterable[dict], finished: bool) -> CellStatus:
    """A cell's state from its RL run's result records."""
    step, eval_step, acc, first, rate, seen = 0, None, (), (), None, False
    for r in records:
        seen = True
        kind = r.get("kind")
        if kind == "train":
            step = max(step, r["step"])
            rate = r.get("mean_step_seconds", rate)
        elif kind == "eval" and (eval_step is None or r["step"] >= eval_step):
            eval_step, acc = r["step"], tuple((rule, e["accuracy"]) for rule, e in r["eval"].items())
            first = tuple((rule, e["accuracy_at_attempt"][0]["accuracy"]) for rule, e in r["eval"].items()
                          if len(e.get("accuracy_at_attempt") or ()) > 1)
            step = max(step, r["step"])
        elif kind == "done":
            step = max(step, r.get("max_steps", step))
    state = "finished" if finished else "running" if seen else "pending"
    return CellStatus(state, step, eval_step, acc, rate, first)


def render(cells: Sequence[Cell], statuses: Sequence[CellStatus], max_steps: int, elapsed_s: float) -> str:
    """The table: a header line, then one line per cell."""
    counts = {s: sum(st.state == s for st in statuses) for s in ("finished", "running", "pending")}
    settings = [", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in c.settings) or "-"
                for c in cells]
    width = max([len(s) for s in settings] + [8])
    lines = [f"[sweep] {elapsed_s / 60:.1f} min: {counts['finished']} finished, {counts['running']} running, "
             f"{counts['pending']} pending",
             f"  {'state':<9}{'seed':>5}{'sft':>6}  {'settings':<{width}}{'step':>10}  latest eval"]
    for cell, st, setting in zip(cells, statuses, settings):
        at1 = dict(st.first)
        ev = ("  ".join(f"{rule} {a:.3f}" + (f" (@1 {at1[rule]:.3f})" if rule in at1 else "") for rule, a in st.acc)
              + f" (step {st.eval_step})") if st.acc else "-"
        step = f"{st.step}/{max_steps}"
        lines.append(f"  {st.state:<9}{cell.seed:>5}{cell.sft_step:>6}  {setting:<{width}}{step:>10}  {ev}")
    return "\n".join(lines)


def read_statuses(run_dirs: Sequence[Path]) -> list[CellStatus]:
    return [cell_status(T.read_results(d) if d.is_dir() else (), (d / "final" / "manifest.json").is_file())
            for d in run_dirs]


class LiveView:
    """Prints :func:`render` to stderr whenever a cell's state, step or evaluation changed, at most every
    ``interval_s`` seconds, until stopped (a context manager around ``Tuner.fit``)."""

    def __init__(self, cells: Sequence[Cell], run_dirs: Sequence[Path], max_steps: int, interval_s: float = 30.0):
        self.cells, self.run_dirs, self.max_steps, self.interval_s = cells, run_dirs, max_steps, interval_s
        self._stop = threading.Event()
        self._t0 = time.time()
        self._last: list[CellStatus] | None = None
        self._thread = threading.Thread(target=self._loop, name="raysweep-live-view", daemon=True)

    def show(self, force: bool = False) -> None:
        statuses = read_statuses(self.run_dirs)
        if force or statuses != self._last:
            self._last = statuses
            print(render(self.cells, statuses, self.max_steps, time.time() - self._t0), file=sys.stderr, flush=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.show()
            except (OSError, ValueError):  # a file being replaced or a line being written: next time
                pass

    def __enter__(self) -> "LiveView":
        self.show(force=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
