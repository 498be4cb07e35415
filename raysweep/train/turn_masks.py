"""Token ids and loss mask of a multi-turn SFT example (``sft.revision_share``): the loss falls on the model's
turns only (every assistant turn, with the template's end-of-turn text), never on the prompt or a feedback turn.

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
    """``{"input_ids", "completion_mask"}`` of ``prompt`` + ``turns``; the mask is 1 on assistant turns only."""
    full = _ids(tokenizer, [*prompt, *turns], False)
    mask = [0] * len(full)
    for j, turn in enumerate(turns):
        if turn["role"] != "assistant":
            continue
        start = _common(_ids(tokenizer, [*prompt, *turns[:j]], True), full)
        end = len(full) if j + 1 == len(turns) else _common(_ids(tokenizer, [*prompt, *turns[:j + 1]], False), full)
        mask[start:end] = [1] * (end - start)
    return {"input_ids": full, "completion_mask": mask}
