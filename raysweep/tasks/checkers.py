"""Answer checkers of the ``files`` task (``task.answer``): is a completion's answer the row's ``answer``?

- ``numeric``: the answer is a number: the ``#### x`` form, else the last ``\\boxed{x}``, else the last number in
  the completion; compared exactly as a fraction (``1/2`` = ``0.5`` = ``\\frac{1}{2}``; ``1,000`` = ``1000``;
  ``1e3`` = ``1000``). Digits are ASCII ``0-9`` (other Unicode digits are not numbers here); a number longer than
  :data:`MAX_DIGITS` characters or with an exponent beyond :data:`MAX_EXPONENT` is not read (malformed).
- ``exact``: the stripped completion equals the stripped answer.
- ``regex:<pattern>``: the pattern's first group, in the last match, equals the stripped answer (searched with
  a time limit: a pattern that backtracks for ever on some text gives ``malformed``, never a hang).
- ``python:<module>:<function>``: ``function(completion, row) -> bool | float | None``: True / False are correct
  / wrong (reward 1 / 0); a float is the reward itself and counts as correct when it is >= 1; None (or an
  exception) is malformed.

Every checker returns ``(verdict, answer read, detail)`` with verdict ``correct`` / ``wrong`` / ``malformed``
(no answer found) and never raises. Pure, except ``python:``, which calls the user's function.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, Callable, Mapping

MAX_DIGITS = 200
"""Longest number (characters) the numeric checker reads; longer ones are not answers."""
MAX_EXPONENT = 400
"""Largest |exponent| of scientific notation the numeric checker reads (1e400 is exact; 1e999999999 is refused)."""
MAX_TEXT = 100_000
"""Characters of a completion a checker reads (its tail: the answer is at the end)."""
REGEX_SECONDS = 0.5
"""Time limit of a ``regex:`` search on one completion."""

Result = tuple[str, "str | None", str]

_NUMBER = re.compile(
    r"(?<![0-9A-Za-z_.])"
    r"(?P<num>[-+−]?(?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)(?:\.[0-9]+)?|[-+−]?\.[0-9]+)"
    r"(?P<exp>[eE][-+]?[0-9]+)?"
    r"(?:\s*/\s*(?P<den>[0-9]+(?:\.[0-9]+)?))?"
)
_HASHES = re.compile(r"####\s*([^\n]*)")
_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*([^{}]*)\}\s*\{\s*([^{}]*)\}")
_LATEX_NOISE = re.compile(r"\\[,!;: ]|\\(?:left|right|mathrm|text|textbf)\b|[${}]")


def to_fraction(num: str, exp: str | None = None, den: str | None = None) -> Fraction | None:
    """A matched number as an exact fraction, or None when it is too large to read."""
    num = num.replace(",", "").replace("−", "-")
    if len(num) > MAX_DIGITS or (den is not None and len(den) > MAX_DIGITS):
        return None
    try:
        value = Fraction(num)
        if exp:
            if len(exp) > 8:
                return None
            e = int(exp[1:])
            if abs(e) > MAX_EXPONENT:
                return None
            value *= Fraction(10) ** e
        if den is not None:
            d = Fraction(den)
            if d == 0:
                return None
            value /= d
        return value
    except (ValueError, ZeroDivisionError, OverflowError):
        return None


def last_number(text: str) -> tuple[str, Fraction] | None:
    """The last number in ``text`` (its text and value), or None."""
    found = None
    for m in _NUMBER.finditer(text):
        if not any(c.isdigit() for c in m.group("num")):
            continue
        found = m
    if found is None:
        return None
    value = to_fraction(found.group("num"), found.group("exp"), found.group("den"))
    return None if value is None else (found.group(0).strip(), value)


def boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (braces matched; a box inside it: the innermost), or None."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth, j = 0, i
    while j < len(text):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                break
        j += 1
    inner = text[i + 1:j]  # an unclosed box: everything after it
    return boxed(inner) if "\\boxed" in inner else inner


def read_number(text: str) -> tuple[str, Fraction] | None:
    """The answer a completion states, as the numeric checker reads it: ``#### x``, ``\\boxed{x}``, the last number."""
    text = text[-MAX_TEXT:]
    marked = _HASHES.findall(text)
    if marked:
        return last_number(marked[-1])
    box = boxed(text)
    if box is not None:
        box = _FRAC.sub(r"(\1)/(\2)", box)
        box = _LATEX_NOISE.sub("", box).replace("(", "").replace(")", "")
        return last_number(box)
    return last_number(_FRAC.sub(r"\1/\2", text))


def numeric(completion: str, expected: str) -> Result:
    want = read_number(str(expected))
    if want is None:
        return "malformed", None, f"the row's answer {str(expected)[:40]!r} is not a number"
    got = read_number(completion)
    if got is None:
        return "malformed", None, "no number found"
    return ("correct" if got[1] == want[1] else "wrong"), got[0], ""


def exact(completion: str, expected: str) -> Result:
    got = completion[-MAX_TEXT:].strip()
    if not got:
        return "malformed", None, "empty answer"
    return ("correct" if got == str(expected).strip() else "wrong"), got[:200], ""


def regex_checker(pattern: str) -> Callable[[str, str], Result]:
    """A ``regex:`` checker; raises ValueError (naming the problem) when ``pattern`` is not a pattern with a group."""
    import regex

    try:
        compiled = regex.compile(pattern)
    except regex.error as exc:
        raise ValueError(f"task.answer: regex:{pattern} is not a valid pattern ({exc})") from None
    if compiled.groups < 1:
        raise ValueError(f"task.answer: regex:{pattern} has no group; put the answer in one, e.g. "
                         r"regex:Answer:\s*(\S+)")

    def check(completion: str, expected: str) -> Result:
        try:
            matches = list(compiled.finditer(completion[-MAX_TEXT:], timeout=REGEX_SECONDS))
        except TimeoutError:
            return "malformed", None, f"regex search took over {REGEX_SECONDS}s"
        except Exception as exc:  # noqa: BLE001 - never raise on a completion
            return "malformed", None, f"regex search failed ({type(exc).__name__})"
        if not matches or matches[-1].group(1) is None:
            return "malformed", None, "no match"
        got = matches[-1].group(1).strip()
        return ("correct" if got == str(expected).strip() else "wrong"), got[:200], ""

    return check


def python_checker(spec: str) -> Callable[[str, Mapping[str, Any]], tuple[str, str | None, str, float | None]]:
    """A ``python:<module>:<function>`` checker: (verdict, None, detail, reward or None for the default)."""
    from raysweep.tasks.protocol import import_object

    fn = import_object(spec, "task.answer")
    if not callable(fn):
        raise ValueError(f"task.answer: python:{spec} is not a function")

    def check(completion: str, row: Mapping[str, Any]):
        try:
            out = fn(completion, dict(row))
        except Exception as exc:  # noqa: BLE001 - a user function's failure is a malformed answer, not a crash
            return "malformed", None, f"{type(exc).__name__}: {str(exc)[:120]}", None
        if out is None:
            return "malformed", None, "the checker found no answer", None
        if isinstance(out, bool):
            return ("correct" if out else "wrong"), None, "", None
        try:
            reward = float(out)
        except (TypeError, ValueError):
            return "malformed", None, f"the checker returned {type(out).__name__}, not bool or float", None
        if reward != reward:  # NaN
            return "malformed", None, "the checker returned NaN", None
        return ("correct" if reward >= 1.0 else "wrong"), None, "", reward

    return check


def parse_spec(spec: str) -> tuple[str, str]:
    """``task.answer`` -> (checker, argument); raises ValueError naming the forms allowed."""
    spec = str(spec)
    if spec in ("numeric", "exact"):
        return spec, ""
    for prefix in ("regex", "python"):
        if spec.startswith(prefix + ":") and spec[len(prefix) + 1:]:
            return prefix, spec[len(prefix) + 1:]
    raise ValueError(f"task.answer: {spec!r} is not a checker; use numeric, exact, regex:<pattern with one group> "
                     "or python:<module>:<function>")
