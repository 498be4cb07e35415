"""What models write, and what experts write: answer formats and tolerant formula extraction.

Accepted answer shapes (first match wins):

1. the paper's JSON: a ``"formula": "..."`` field (double or single quotes, anywhere in the text);
2. a ``Formula: ...`` line (any case; the compact and paired formats);
3. a bare equation: the last line that is made only of numbers, operators, parentheses and ``=``.

An ``= <number>`` tail is dropped (``3*8=24`` scores ``3*8``); the claimed number itself is ignored,
the formula's exact value is what counts. Quotes, ``$``, spaces and punctuation around the formula are
dropped, except a ``.`` right before a digit: ``.5*48`` is a float (malformed), not ``5*48``. Operator
look-alikes are accepted: ``×``, ``x``, ``X``, ``·``, ``∗`` for ``*``; ``÷`` for ``/``; ``−`` and ``–`` for
``-``; ``[ ]`` and ``{ }`` as parentheses (see :func:`raysweep.tasks.verifier.normalise`). Texts over
:data:`MAX_ANSWER_CHARS` are malformed.
"""

from __future__ import annotations

import json
import re
from typing import Literal, Sequence

from raysweep.tasks.verifier import normalise

AnswerFormat = Literal["json", "compact", "paired"]
ANSWER_FORMATS: tuple[str, ...] = ("json", "compact", "paired")
MAX_ANSWER_CHARS = 8192
"""Answers longer than this are not searched (verdict ``malformed``)."""

_JSON_FIELD = re.compile(r"""["']formula["']\s*:\s*["']([^"'\n]{0,512})["']""", re.IGNORECASE)
_FORMULA_LINE = re.compile(r"^[^\w\n]*formula[*_ \t]*[:：][*_ \t]*(.{0,512})$", re.IGNORECASE | re.MULTILINE)
_EQUATION_CHARS = re.compile(r"[0-9+\-*/()=]+")
_STRIP = " \t`'\"$.,;"


def extract_formula(text: str) -> str | None:
    """The formula part of an answer (without any ``= target`` tail), or None if there is none."""
    if not isinstance(text, str) or len(text) > MAX_ANSWER_CHARS:
        return None
    m = _JSON_FIELD.search(text)
    if m is None:
        m = _FORMULA_LINE.search(text)
    if m is not None:
        candidate = m.group(1)
    else:
        candidate = None
        for line in reversed(text.splitlines()):
            norm = normalise(line.strip(_STRIP))
            if norm and _EQUATION_CHARS.fullmatch(norm) and re.search(r"\d", norm) and re.search(r"[-+*/]", norm):
                candidate = line
                break
        if candidate is None:
            return None
    return _drop_tail(_strip(candidate))


def _strip(text: str) -> str:
    """Drop quotes, spaces and punctuation around a formula, but never a decimal point: ``.5*48`` keeps its
    ``.`` (a float, so malformed) instead of becoming ``5*48``; a trailing ``.`` ends a sentence."""
    out = text.strip(_STRIP)
    head = text[: len(text) - len(text.lstrip(_STRIP))]
    return "." + out if head.endswith(".") and out[:1].isdigit() else out


def _drop_tail(candidate: str) -> str:
    """``a*b=24`` -> ``a*b``; ``24=a*b`` -> ``a*b``; a bare ``24`` stays ``24``."""
    if "=" not in candidate:
        return candidate
    parts = [_strip(p) for p in candidate.split("=")]
    exprs = [p for p in parts if p and not re.fullmatch(r"\d+", normalise(p))]
    if exprs:
        return exprs[0]
    return parts[0]


def render_answer(
    cards: Sequence[str], values: Sequence[int], formula: str, target: int, fmt: AnswerFormat
) -> str:
    """The expert answer text for ``formula`` in answer format ``fmt`` (what SFT trains on)."""
    equation = f"{formula}={target}"
    if fmt == "json":
        return json.dumps({"cards": list(cards), "number": list(values), "formula": equation})
    if fmt == "compact":
        return f"Numbers: {', '.join(str(v) for v in values)}\nFormula: {equation}"
    if fmt == "paired":  # each card, then the number it counts as: the paper's JSON "cards" beside "number"
        return f"Numbers: {', '.join(f'{c}={v}' for c, v in zip(cards, values, strict=True))}\nFormula: {equation}"
    raise ValueError(f"unknown answer format {fmt!r}; choose one of {ANSWER_FORMATS}")


def format_instructions(n_cards: int, target: int, rule_text: str, fmt: AnswerFormat) -> str:
    """The prompt's description of the answer format."""
    letters = "abcdef"[:n_cards]
    if fmt == "json":
        xs = ", ".join("xyzwuv"[:n_cards])
        return (
            "Your response should be a valid JSON object on one line:\n"
            "{\n"
            f'  "cards": [{xs}], the cards as dealt,\n'
            f'  "number": [{", ".join(letters)}], the number each card counts as, where {rule_text},\n'
            f'  "formula": "an equation that equals {target}"\n'
            "}"
        )
    if fmt == "compact":
        return (
            "Answer in exactly two lines:\n"
            "Numbers: the number each card counts as, in the order dealt\n"
            f"Formula: an equation that equals {target}"
        )
    if fmt == "paired":
        return (
            "Answer in exactly two lines:\n"
            "Numbers: each card as dealt and the number it counts as (card=number)\n"
            f"Formula: an equation that equals {target}"
        )
    raise ValueError(f"unknown answer format {fmt!r}; choose one of {ANSWER_FORMATS}")
