"""The task protocol: what every stage (SFT, RL, evaluation, sweeps, the boundary report, spectral edits,
pre-training) asks of a task. GeneralPoints (:mod:`raysweep.tasks.gp_task`), the data-file task
(:mod:`raysweep.tasks.files`) and a user's own class (``task.kind: package.module:ClassName``) implement it.

A task carries its own data, prompts, scorer and reward (as nanochat's tasks do):

- ``sft_dataset(n, seed)``: conversational ``prompt`` / ``completion`` rows (TRL trains on the completion);
- ``rl_dataset(n, seed)``: ``prompt`` rows with the columns the scorer reads (TRL hands them to the reward);
- ``eval_sets``: the names of the evaluation sets, the ID set first, then any number of OOD sets, and
  ``eval_dataset(name, n, seed)``: ``n`` distinct problems of one set (``prompt`` + the scorer's columns, and an
  expert ``completion`` where there is one, for the evaluation loss); too few problems: :class:`PoolTooSmall`;
- ``score(completion, row)``: a :class:`Verdict` (verdict, reward) for one completion, never raising on any text;
- ``key(row)``: the problem key that splits, ``n`` and clustered intervals count by;
- ``max_new_tokens`` / ``budget_examples(seed)``: the answer budget (explicit, or 1.5x the longest expert answer);
- ``attempts``: 1, except GeneralPoints' multi-attempt episodes (``task.attempts``; its verifier's feedback).

A user's class subclasses :class:`Task`, names its pydantic options model ``Options`` (validated from
``task.options``) and implements the abstract methods; ``tests/custom_task.py`` is a complete example.
"""

from __future__ import annotations

import importlib
import os
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, Mapping

from pydantic import BaseModel


class PoolTooSmall(ValueError):
    """An evaluation set holds fewer distinct problems than ``eval.n``."""


@dataclass(frozen=True)
class Verdict:
    """The verdict on one completion: ``verdict`` (one of the task's ``verdicts``; ``correct`` counts for
    accuracy), ``reward`` (the RL reward), ``answer`` (what was read as the answer, or None) and ``detail``."""

    verdict: str
    reward: float
    answer: str | None = None
    detail: str = ""

    @property
    def correct(self) -> bool:
        return self.verdict == "correct"


class Task(ABC):
    """One task: data, prompts, scorer and problem key for every stage. Subclass it for your own task."""

    kind: ClassVar[str] = "custom"
    verdicts: ClassVar[tuple[str, ...]] = ("correct", "wrong", "malformed")
    """Every verdict :meth:`score` can return; ``correct`` first. Reports break answers down by these."""
    answer_field: ClassVar[str] = "parsed"
    """The evaluation records' name for each answer's :attr:`Verdict.answer` (GeneralPoints: ``formulas``)."""
    Options: ClassVar[type[BaseModel] | None] = None
    """A user class's options model (``task.options`` is validated against it; None: no options)."""

    def __init__(self, options: BaseModel | None = None):
        self.options = options

    # ------------------------------------------------------------------ what the stages need
    @property
    @abstractmethod
    def eval_sets(self) -> tuple[str, ...]:
        """Names of the evaluation sets, the ID set first, then the OOD sets."""

    @property
    def train_name(self) -> str:
        """The name of the training distribution (``<train_name>-train`` is the trunk's own-problems set)."""
        return self.eval_sets[0]

    @property
    def attempts(self) -> int:
        """Attempts per problem: 1 (multi-attempt episodes with the verifier's feedback are GeneralPoints-only)."""
        return 1

    max_new_tokens: int | None = None
    """The answer budget; None: 1.5x the longest of :meth:`budget_examples`' expert answers, +8."""

    @abstractmethod
    def sft_dataset(self, n: int, seed: int) -> Any:
        """A ``datasets.Dataset`` of ``n`` SFT examples: ``prompt`` and ``completion`` (chat messages)."""

    @abstractmethod
    def rl_dataset(self, n: int, seed: int) -> Any:
        """A ``datasets.Dataset`` of ``n`` RL prompts: ``prompt`` and the columns :meth:`score` reads."""

    @abstractmethod
    def eval_dataset(self, name: str, n: int, seed: int = 0) -> Any:
        """``n`` distinct problems of evaluation set ``name`` (``prompt``, the scorer's columns, optionally an
        expert ``completion``); raise :class:`PoolTooSmall` when the set holds fewer."""

    @abstractmethod
    def score(self, completion: str, row: Mapping[str, Any]) -> Verdict:
        """The verdict on one completion to ``row`` (a row of any of this task's datasets). Never raises."""

    def key(self, row: Mapping[str, Any]) -> str:
        """The problem ``row`` poses (splits, ``n`` and clustered intervals count by it); default: its prompt."""
        return str(row.get("key") or _prompt_text(row["prompt"]))

    def budget_examples(self, seed: int) -> list[str]:
        """Expert answers the default answer budget is sized from (when an evaluation set has no ``completion``
        column, and for RL): default, a sample of the SFT completions."""
        ds = self.sft_dataset(64, seed)
        return [c[0]["content"] if isinstance(c, list) else str(c) for c in ds["completion"]]

    def record(self, row: Mapping[str, Any]) -> dict:
        """Extra fields of an evaluation record for ``row`` (GeneralPoints: its cards)."""
        return {}

    def check(self, eval_n: int) -> None:
        """Raise :class:`PoolTooSmall` (or ValueError) unless every evaluation set holds ``eval_n`` problems."""
        for name in self.eval_sets:
            self.eval_dataset(name, eval_n, 0)

    def identity(self) -> dict:
        """What shapes this task's data and scores, as JSON (part of trunk and run ids)."""
        return {}


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(str(m.get("content", "")) for m in prompt if isinstance(m, dict))


def import_object(spec: str, what: str):
    """``package.module:Name`` -> the object; the working directory is importable (as for a user's own
    module beside the sweep config). Raises ValueError naming ``what`` and the fix."""
    module, _, name = spec.partition(":")
    if not module or not name or not all(p.isidentifier() for p in module.split(".") + name.split(".")):
        raise ValueError(f"{what}: {spec!r} is not an import path; give package.module:Name")
    try:
        obj = _import(module)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to fix, in one line
        raise ValueError(f"{what}: cannot import module {module!r} ({type(exc).__name__}: {exc}); put it on "
                         "PYTHONPATH or in the working directory") from None
    for part in name.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{what}: module {module!r} has no {name!r}")
        obj = getattr(obj, part)
    return obj


def _import(module: str):
    """Import ``module``; one found only in the working directory puts that directory on ``PYTHONPATH`` too, so
    the processes started later (Ray's workers, torchrun's ranks) import it wherever they run."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        cwd = os.getcwd()
        if exc.name != module.split(".")[0] or cwd in sys.path:
            raise
        sys.path.append(cwd)
        obj = importlib.import_module(module)
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (cwd, os.environ.get("PYTHONPATH")) if p)
        return obj


def task_of(config: Any) -> Task:
    """The :class:`Task` a ``task`` config section describes (a Task passes through); memoised per config."""
    if isinstance(config, Task):
        return config
    return _made(type(config), config.model_dump_json())


@lru_cache(maxsize=64)
def _made(cls: type, config_json: str) -> Task:
    return cls.model_validate_json(config_json).make()


def refuse_for_other_kinds(task: Task, what: str) -> None:
    """Raise ValueError: ``what`` is a GeneralPoints feature (used by config checks)."""
    if task.kind != "generalpoints":
        raise ValueError(f"{what} is a GeneralPoints feature; task.kind={task.kind!r} has no such thing: leave it "
                         "unset (see docs/tasks.md)")
