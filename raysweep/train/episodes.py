"""Multi-attempt RL episodes (``task.attempts`` > 1): TRL GRPOTrainer's ``rollout_func``.

An episode is the paper's protocol in token ids: the prompt, the model's attempt, the verifier's feedback as a
user turn, the model's next attempt, ... until an attempt is correct, ``task.attempts`` are used, or the episode
budget (``rl.max_completion_length``) cannot hold another feedback turn and answer. The trainer sees one
completion per episode: every attempt and feedback turn concatenated, with ``env_mask`` 1 on the model's tokens
and 0 on the environment's (the feedback turns and the chat template's turn markers), so only what the model
wrote is in the loss. Attempt k is generated conditioned on exactly the ids the trainer will score
(prompt + completion so far), so the policy gradient is taken on the distribution that was sampled.

The episode's reward (:func:`episode_return`) is the last attempt's reward (``rl.episode_reward: final``) or the
discounted sum of every attempt's reward (``discounted``, with ``rl.gamma``).

Pure parts: :func:`episode_return`, :class:`TurnTemplate` (how a feedback turn is written in a tokenizer's chat
template), :func:`episode_budget`. Effectful: :class:`EpisodeRollout`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from raysweep.tasks.feedback import judge
from raysweep.tasks.generalpoints import TaskConfig


def episode_return(rewards: Sequence[float], mode: str, gamma: float) -> float:
    """The episode's reward from its attempts' rewards: ``final`` the last one's, ``discounted``
    ``sum_k gamma^(k-1) r_k`` (attempt 1 undiscounted)."""
    if not rewards:
        raise ValueError("an episode has at least one attempt")
    if mode == "final":
        return float(rewards[-1])
    if mode == "discounted":
        return float(sum(r * gamma ** k for k, r in enumerate(rewards)))
    raise ValueError(f"unknown episode reward {mode!r}; choose final or discounted")


_PROBE_PROMPT = [{"role": "user", "content": "\x01prompt\x01"}]
_ANSWER, _MESSAGE = "\x02answer\x02", "\x03message\x03"


@dataclass(frozen=True)
class TurnTemplate:
    """The chat template's text around a feedback turn, read off the template itself: ``closing`` ends the
    model's turn (it starts with the eos token's text when the template ends turns with it), then ``before`` +
    the message + ``after`` (the user turn and the next assistant header)."""

    closing: str
    before: str
    after: str
    eos_text: str

    @classmethod
    def of(cls, tokenizer) -> "TurnTemplate":
        one = tokenizer.apply_chat_template(_PROBE_PROMPT + [{"role": "assistant", "content": _ANSWER}],
                                            tokenize=False)
        two = tokenizer.apply_chat_template(
            _PROBE_PROMPT + [{"role": "assistant", "content": _ANSWER}, {"role": "user", "content": _MESSAGE}],
            tokenize=False, add_generation_prompt=True)
        if _ANSWER not in two or _MESSAGE not in two:
            raise ValueError("the tokenizer's chat template drops an assistant or user turn's content; multi-attempt "
                             "episodes need a template that writes every turn (task.attempts > 1)")
        tail = two[two.index(_ANSWER) + len(_ANSWER):]
        closing_one = one[one.index(_ANSWER) + len(_ANSWER):]
        turn, after = tail.split(_MESSAGE, 1)
        # what closes an assistant turn is common to both renderings; the rest of ``turn`` opens the user turn
        n = 0
        while n < min(len(closing_one), len(turn)) and closing_one[n] == turn[n]:
            n += 1
        return cls(closing=turn[:n], before=turn[n:], after=after, eos_text=tokenizer.eos_token or "")

    def text(self, message: str, ended_with_eos: bool) -> str:
        """The environment's text after an answer: the rest of the model's turn, the feedback turn, the next
        assistant header. When the model ended its answer with the eos token, that token is its own (not repeated)."""
        closing = self.closing
        if ended_with_eos and self.eos_text and closing.startswith(self.eos_text):
            closing = closing[len(self.eos_text):]
        return closing + self.before + message + self.after


def feedback_tokens(tokenizer, template: TurnTemplate, message: str, ended_with_eos: bool) -> list[int]:
    return tokenizer(template.text(message, ended_with_eos), add_special_tokens=False)["input_ids"]


def longest_feedback(tokenizer, task: TaskConfig) -> int:
    """Tokens of a long feedback turn for this task: every kind of message, with as many two-digit numbers as the
    hand has cards in each list (the budget check's estimate; a longer turn at run time ends the episode)."""
    from raysweep.tasks.feedback import check_messages

    m = check_messages(task.feedback)
    nums = [13] * task.num_cards
    texts = [m["prefix"] + m["join"].join([m["invalid_numbers"].format(numbers=nums),
                                           m["unused_numbers"].format(numbers=nums)]),
             m["prefix"] + m["malformed"].format(detail="unexpected character '?' at position 12"),
             m["prefix"] + m["wrong_value"].format(value="-1234/567", target=task.target)]
    template = TurnTemplate.of(tokenizer)
    return max(len(feedback_tokens(tokenizer, template, t, False)) for t in texts)


def episode_budget(attempts: int, answer_tokens: int, feedback_tokens_: int) -> int:
    """Tokens an episode of ``attempts`` answers of ``answer_tokens`` with a feedback turn between each needs."""
    return attempts * answer_tokens + (attempts - 1) * feedback_tokens_


def prompt_key(prompt: Any) -> str:
    """A prompt (chat messages) as a lookup key."""
    return json.dumps(prompt, sort_keys=True)


class EpisodeRollout:
    """TRL GRPOTrainer ``rollout_func``: whole episodes of up to ``task.attempts`` attempts for the prompts of this
    process (already repeated ``num_generations`` times by TRL's sampler).

    ``hands`` maps :func:`prompt_key` of each RL prompt to its (cards, rule name, target). Each attempt is capped at
    ``answer_tokens`` and the whole completion at ``budget``; ``generation`` is TRL's generation config (sampling
    settings), its ``max_new_tokens`` replaced per attempt.
    """

    def __init__(self, task: TaskConfig, tokenizer, hands: dict[str, tuple], answer_tokens: int, budget: int):
        self.task, self.tokenizer, self.hands = task, tokenizer, hands
        self.answer_tokens, self.budget = answer_tokens, budget
        self.template = TurnTemplate.of(tokenizer)
        self.train_rule = task.rule(task.train_rule)

    def _generate(self, model, generation, inputs: list[list[int]]) -> list[list[int]]:
        """One answer per input (token ids), sampled; each cut after its eos token."""
        import torch

        pad = self.tokenizer.pad_token_id
        eos = self.tokenizer.eos_token_id
        width = max(len(r) for r in inputs)
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in inputs], device=model.device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in inputs], device=model.device)
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=generation)
        answers = []
        for row in out[:, width:].tolist():
            answers.append(row[: row.index(eos) + 1] if eos in row else [t for t in row if t != pad])
        return answers

    def run(self, model, generation, prompts: Sequence) -> dict:
        """Episodes for ``prompts`` with ``model`` (pure of the trainer: testable on its own)."""
        import copy

        tok = self.tokenizer
        hands = []
        for p in prompts:
            key = prompt_key(p)
            if key not in self.hands:
                raise KeyError("rollout: a prompt that is not in the RL prompt pool (the rollout maps each prompt to "
                               "its hand)")
            hands.append(self.hands[key])
        prompt_ids = [tok(tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True),
                          add_special_tokens=False)["input_ids"] for p in prompts]
        gen = copy.deepcopy(generation)
        gen.max_new_tokens = self.answer_tokens
        n = len(prompts)
        completion: list[list[int]] = [[] for _ in range(n)]
        env_mask: list[list[int]] = [[] for _ in range(n)]
        verdicts: list[list[str]] = [[] for _ in range(n)]
        rewards: list[list[float]] = [[] for _ in range(n)]
        answers: list[list[str]] = [[] for _ in range(n)]
        end = ["attempts"] * n
        active = list(range(n))
        for attempt in range(1, self.task.attempts + 1):
            if not active:
                break
            new = self._generate(model, gen, [prompt_ids[i] + completion[i] for i in active])
            still = []
            for i, toks in zip(active, new, strict=True):
                completion[i] += toks
                env_mask[i] += [1] * len(toks)
                cards, rule_name, target = hands[i]
                text = tok.decode(toks, skip_special_tokens=True)
                s, message = judge(cards, text, self.task.rule(rule_name), int(target), self.task, self.train_rule)
                verdicts[i].append(s.verdict)
                rewards[i].append(s.reward)
                answers[i].append(text)
                if message is None:
                    end[i] = "solved"
                    continue
                if attempt == self.task.attempts:
                    continue
                ended = bool(toks) and toks[-1] == tok.eos_token_id
                fb = feedback_tokens(tok, self.template, message, ended)
                if len(completion[i]) + len(fb) + self.answer_tokens > self.budget:
                    end[i] = "budget"
                    continue
                completion[i] += fb
                env_mask[i] += [0] * len(fb)
                still.append(i)
            active = still
        return {"prompt_ids": prompt_ids, "completion_ids": completion, "logprobs": None, "env_mask": env_mask,
                "attempt_verdicts": verdicts, "attempt_rewards": rewards, "attempt_answers": answers,
                "episode_end": end, "model_tokens": [sum(m) for m in env_mask],
                "feedback_tokens": [len(m) - sum(m) for m in env_mask]}

    def __call__(self, prompts: list, trainer) -> dict:
        import torch
        from trl.models import unwrap_model_for_generation

        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                         gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
                                         generation_kwargs=trainer.generation_kwargs,
                                         gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs,
                                         ) as policy, torch.no_grad():
            was_training = policy.training
            policy.eval()
            try:
                return self.run(policy, trainer.generation_config, prompts)
            finally:
                policy.train(was_training)
