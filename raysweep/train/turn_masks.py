"""Token ids and loss mask of a multi-turn SFT example (``sft.revision_share``): the loss falls on the expert's
answer only (the last assistant turn, with the template's end-of-turn text), never on the prompt, a feedback turn
or an earlier assistant turn: a revision example's first answer is wrong on purpose, context to revise from, not
something to imitate (trained on, it would teach first attempts to fail).

Each turn's span is found by rendering the conversation up to it with the tokenizer's chat template and matching
the rendering's tokens against the whole example's (the longest common prefix, as TRL does for a prompt), so a
template whose turn boundaries merge into one token still gets a mask of the right length.
"""

from __future__ import annotations

from typing import Sequence


def _ids(tokenizer, messages: Sequence[dict], generation_prompt: bool) -> list[int]:
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=generation_prompt)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def tokenize_turns(tokenizer, prompt: Sequence[dict], turns: Sequence[dict]) -> dict:
    """``{"input_ids", "completion_mask"}`` of ``prompt`` + ``turns`` (which end with the expert's assistant
    turn); the mask is 1 on that last turn only."""
    if not turns or turns[-1]["role"] != "assistant":
        raise ValueError("a multi-turn SFT example ends with the expert's assistant turn")
    full = _ids(tokenizer, [*prompt, *turns], False)
    start = _common(_ids(tokenizer, [*prompt, *turns[:-1]], True), full)
    return {"input_ids": full, "completion_mask": [0] * start + [1] * (len(full) - start)}
