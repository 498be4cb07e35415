"""The RL reward: the task's scorer (:meth:`raysweep.tasks.protocol.Task.score`; GeneralPoints: its exact
verifier), as a TRL reward function. A task other than GeneralPoints gets each completion's row rebuilt from the
columns TRL passes (``columns``: the RL dataset's, but ``prompt``), the prompt included.

TRL calls ``reward(prompts=..., completions=..., completion_ids=..., cards=..., rule=..., **kw)`` with the
dataset's extra columns (``cards``, ``rule``, ``target``) per completion, and gives it ``log_metric`` to report extra
step metrics; the reward of each completion is ``score(...).reward`` under the task's scheme, and the
share of each verdict (correct, wrong_value, wrong_cards, malformed) is logged per step.

With multi-attempt episodes (``task.attempts`` > 1, :mod:`raysweep.train.episodes`) the rollout has scored every
attempt already and hands its verdicts and rewards over as extra columns; the reward is then the episode's
(:func:`~raysweep.train.episodes.episode_return`: ``rl.episode_reward`` final or discounted), the verdict shares
are the last attempt's, and per step it logs the attempts used (``attempts/mean``), the share solved at each
attempt (``attempts/solved_at_<k>``), the share of episodes the budget cut short (``attempts/budget_ended``) and the
tokens per episode the model wrote (``attempts/model_tokens``, in the loss) and the feedback turns took
(``attempts/feedback_tokens``, masked out).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from raysweep.tasks.generalpoints import VERDICTS, TaskConfig, score
from raysweep.tasks.protocol import task_of


def completion_text(completion: Any) -> str:
    """A completion as text: TRL passes conversational completions as ``[{"role", "content"}]``."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    return "".join(str(m.get("content", "")) if isinstance(m, dict) else str(m) for m in completion)


class VerifierReward:
    """Picklable TRL reward function scoring answers with :func:`score` under ``task``'s rules and scheme."""

    __name__ = "verifier"  # TRL names the per-function reward metrics after it: rewards/verifier/mean

    def __init__(self, task: TaskConfig, keep: int = 0, episode_reward: str = "final", gamma: float = 1.0,
                 columns: Sequence[str] = ()):
        self.task = task
        self.columns = tuple(columns)
        self.keep = keep
        self.episode_reward, self.gamma = episode_reward, gamma
        self.recent: list[dict] = []  # the last scored completions (at most ``keep``), for auditing rewards

    def take_recent(self) -> list[dict]:
        """The completions scored since the last call (at most ``keep``: the first of each batch), and forget them."""
        out, self.recent = self.recent, []
        return out

    def __call__(self, prompts: Sequence | None = None, completions: Sequence = (), cards: Sequence = (),
                 rule: Sequence = (), target: Sequence | None = None, log_metric=None,
                 attempt_verdicts: Sequence | None = None, **kw: Any) -> list[float]:
        if attempt_verdicts is not None:
            return self._episodes(cards, target, attempt_verdicts, kw, log_metric)
        if self.task.kind != "generalpoints":
            named = {"cards": cards, "rule": rule, "target": target}
            cols = {c: (kw[c] if c in kw else named.get(c)) for c in self.columns}
            return self._rows(prompts, completions, cols, log_metric)
        if len(cards) != len(completions) or len(rule) != len(completions):
            raise ValueError(f"reward: {len(completions)} completions but {len(cards)} cards and {len(rule)} rules "
                             "(the RL dataset must keep its 'cards' and 'rule' columns)")
        if target is None:  # a dataset made before per-hand targets: every hand at task.target
            if self.task.targets is not None:
                raise ValueError("reward: task.targets is set but the RL dataset has no 'target' column")
            target = [self.task.target] * len(completions)
        texts = [completion_text(a) for a in completions]
        scores = [score(c, a, self.task.rule(r), int(t), self.task.reward)
                  for a, c, r, t in zip(texts, cards, rule, target, strict=True)]
        for i in range(min(len(scores), self.keep - len(self.recent))):
            self.recent.append({"cards": list(cards[i]), "target": int(target[i]), "completion": texts[i],
                                "verdict": scores[i].verdict, "reward": scores[i].reward})
        if log_metric is not None and scores:
            counts = Counter(s.verdict for s in scores)
            for v in VERDICTS:
                log_metric(f"verdict/{v}", counts[v] / len(scores))
        return [s.reward for s in scores]

    def _rows(self, prompts, completions, cols: dict, log_metric) -> list[float]:
        task = task_of(self.task)
        missing = [c for c, v in cols.items() if v is None or len(v) != len(completions)]
        if missing:
            raise ValueError(f"reward: {len(completions)} completions but the column(s) {missing} do not match "
                             "(the RL dataset must keep the columns its scorer reads)")
        texts = [completion_text(a) for a in completions]
        rows = [{c: v[i] for c, v in cols.items()} | ({"prompt": prompts[i]} if prompts is not None else {})
                for i in range(len(texts))]
        scores = [task.score(t, r) for t, r in zip(texts, rows)]
        for i in range(min(len(scores), self.keep - len(self.recent))):
            self.recent.append({"key": task.key(rows[i]), "completion": texts[i], "verdict": scores[i].verdict,
                                "reward": scores[i].reward})
        if log_metric is not None and scores:
            counts = Counter(s.verdict for s in scores)
            for v in task.verdicts:
                log_metric(f"verdict/{v}", counts[v] / len(scores))
        return [float(s.reward) for s in scores]

    def _episodes(self, cards, target, verdicts, kw, log_metric) -> list[float]:
        from raysweep.train.episodes import episode_return

        rewards, answers, ends = kw["attempt_rewards"], kw["attempt_answers"], kw["episode_end"]
        out = [episode_return(r, self.episode_reward, self.gamma) for r in rewards]
        for i in range(min(len(out), self.keep - len(self.recent))):
            self.recent.append({"cards": list(cards[i]), "target": None if target is None else int(target[i]),
                                "attempts": [{"answer": a, "verdict": v} for a, v in zip(answers[i], verdicts[i])],
                                "end": ends[i], "reward": out[i]})
        if log_metric is not None and out:
            n = len(out)
            last = Counter(vs[-1] for vs in verdicts)
            for v in VERDICTS:
                log_metric(f"verdict/{v}", last[v] / n)
            log_metric("attempts/mean", sum(len(vs) for vs in verdicts) / n)
            for k in range(1, self.task.attempts + 1):
                log_metric(f"attempts/solved_at_{k}", sum(len(vs) == k and vs[-1] == "correct" for vs in verdicts) / n)
            log_metric("attempts/budget_ended", sum(e == "budget" for e in ends) / n)
            # tokens per episode the model wrote (in the loss) and the environment wrote (masked out of it)
            log_metric("attempts/model_tokens", sum(kw["model_tokens"]) / n)
            log_metric("attempts/feedback_tokens", sum(kw["feedback_tokens"]) / n)
        return out
