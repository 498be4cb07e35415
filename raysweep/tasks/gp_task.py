"""GeneralPoints as a :class:`~raysweep.tasks.protocol.Task`: its rules are the evaluation sets (``task.eval_rules``,
the training rule's first), its problem key is (the card values under the row's rule, the target), its verdicts
are the exact verifier's. Everything GeneralPoints-only (rules, solver, varied pre-training rules, revision
examples, multi-attempt feedback) stays in :mod:`raysweep.tasks.generalpoints` and its neighbours."""

from __future__ import annotations

from typing import Any, Mapping

from raysweep.tasks.generalpoints import VERDICTS, TaskConfig, check_eval_pools, problem_label, problem_of, score
from raysweep.tasks.protocol import Task, Verdict


class GeneralPointsTask(Task):
    kind = "generalpoints"
    verdicts = VERDICTS
    answer_field = "formulas"

    def __init__(self, config: TaskConfig):
        super().__init__(config)
        self.config = config
        self._train_rule = config.rule(config.train_rule)

    @property
    def eval_sets(self) -> tuple[str, ...]:
        return tuple(self.config.eval_rules)

    @property
    def train_name(self) -> str:
        return self.config.train_rule

    @property
    def attempts(self) -> int:
        return self.config.attempts

    def sft_dataset(self, n: int, seed: int, expert: str = "random", unique: bool = False,
                    revision_share: float = 0.0, revision_attempts: int = 2):
        from raysweep.tasks.datasets import sft_dataset

        return sft_dataset(self.config, n, seed, expert, unique=unique, revision_share=revision_share,
                           revision_attempts=revision_attempts)

    def rl_dataset(self, n: int, seed: int, rules: tuple[str, ...] = (), face_values: tuple[int, int] = (1, 13),
                   face_tied: float = 0.0):
        """The training rule's RL prompts, or with ``rules`` (``rl.rules``) prompts stating rules to be read."""
        from raysweep.tasks.datasets import rl_dataset

        return rl_dataset(self.config, n, seed, rules, face_values, face_tied).select_columns(
            ["prompt", "cards", "rule", "target"])

    def eval_dataset(self, name: str, n: int, seed: int = 0):
        from raysweep.tasks.datasets import eval_dataset

        return eval_dataset(self.config, name, n, seed)

    def _target(self, row: Mapping[str, Any]) -> int:
        t = row.get("target")
        return self.config.target if t is None else int(t)

    def score(self, completion: str, row: Mapping[str, Any]) -> Verdict:
        s = score(row["cards"], completion, self.config.rule(row["rule"]), self._target(row), self.config.reward,
                  self._train_rule)
        return Verdict(s.verdict, s.reward, s.formula, s.detail)

    def key(self, row: Mapping[str, Any]) -> str:
        return problem_label(problem_of(row["cards"], self.config.rule(row["rule"]), self._target(row)))

    def record(self, row: Mapping[str, Any]) -> dict:
        return {"cards": row["cards"]} | ({"target": row["target"]} if self.config.targets is not None else {})

    def budget_examples(self, seed: int) -> list[str]:
        return [c[0]["content"] for c in self.sft_dataset(64, seed)["completion"]]

    def check(self, eval_n: int) -> None:
        check_eval_pools(self.config, eval_n)

    def identity(self) -> dict:
        return self.config.identity()
