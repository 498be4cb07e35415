"""Multi-attempt episodes (the paper's protocol, ``task.attempts``): after a wrong attempt the verifier's
feedback is appended as a user turn and the model answers again, up to ``task.attempts`` times; a correct
answer ends the episode.

Pure parts: the conversation of an episode (:func:`conversation`), which attempt solved it (:func:`solved_at`),
accuracy within k attempts with intervals clustered by problem (:func:`accuracy_at_attempts`). The effectful
part, :func:`run_episodes`, generates the later attempts in batches of the still-unsolved episodes only (an
episode solved at attempt 1 costs one generation), sharing the prompts' common prefix cache as evaluation does.
"""

from __future__ import annotations

from typing import Callable, Sequence

from raysweep.intervals import by_problem, clustered_accuracy
from raysweep.tasks.feedback import judge
from raysweep.tasks.generalpoints import Rule, TaskConfig


def conversation(prompt: list[dict], answers: Sequence[str], feedbacks: Sequence[str]) -> list[dict]:
    """The messages before the next attempt: the prompt, then each earlier answer and its feedback."""
    out = list(prompt)
    for a, f in zip(answers, feedbacks, strict=True):
        out += [{"role": "assistant", "content": a}, {"role": "user", "content": f}]
    return out


def solved_at(verdicts: Sequence[str]) -> int | None:
    """The attempt (1-based) whose verdict is correct, or None."""
    return next((k + 1 for k, v in enumerate(verdicts) if v == "correct"), None)


def accuracy_at_attempts(problems: Sequence, solved: Sequence[Sequence[int | None]], attempts: int) -> list[dict]:
    """For k = 1..attempts: the share of episodes solved within k attempts, clustered by problem (``solved[i]``:
    each sample's solving attempt for prompt i, ``problems[i]`` its problem key); ``n`` counts problems."""
    out = []
    for k in range(1, attempts + 1):
        groups = by_problem(problems, [[s is not None and s <= k for s in ss] for ss in solved])
        acc, ci, _ = clustered_accuracy(groups)
        out.append({"attempt": k, "accuracy": acc, "ci95": list(ci), "n": len(groups)})
    return out


def run_episodes(generate: Callable, prompts: Sequence[list[dict]], first: Sequence[Sequence[str]],
                 hands: Sequence[tuple[Sequence[str], int]], rule: Rule, task: TaskConfig,
                 train_rule: Rule) -> tuple[list[list[list[str]]], int]:
    """Every episode's answers, attempt by attempt (``[prompt][sample][attempt]``), and the tokens generated
    after attempt 1. ``first``: each prompt's attempt-1 answers (one per sample); ``hands``: (cards, target) per
    prompt; ``generate(conversations, attempt)`` returns one answer per conversation and its token count."""
    episodes = [[[a] for a in answers] for answers in first]
    feedbacks: list[list[list[str]]] = [[[] for _ in answers] for answers in first]
    tokens = 0
    for attempt in range(2, task.attempts + 1):
        todo = []
        for i, (cards, target) in enumerate(hands):
            for j, ep in enumerate(episodes[i]):
                if len(ep) != attempt - 1:
                    continue  # solved earlier
                _, message = judge(cards, ep[-1], rule, target, task, train_rule)
                if message is None:
                    continue
                feedbacks[i][j].append(message)
                todo.append((i, j))
        if not todo:
            break
        convs = [conversation(prompts[i], episodes[i][j], feedbacks[i][j]) for i, j in todo]
        answers, n = generate(convs, attempt)
        tokens += n
        for (i, j), a in zip(todo, answers, strict=True):
            episodes[i][j].append(a)
    return episodes, tokens
