"""Exact, bounded arithmetic for GeneralPoints formulas.

A formula is parsed with :mod:`ast` (``mode="eval"``) and walked by hand: only binary ``+ - * /``,
parentheses and non-negative integer literals are legal. Values are :class:`fractions.Fraction`, so
``8/(3-8/3)`` is exactly 24. Division by zero is not an error of form: it yields ``None`` (the caller
scores it as a wrong value). Nothing here ever calls ``eval``/``exec``; every size is bounded before
parsing, so hostile text costs microseconds and raises only :class:`FormulaError`.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from fractions import Fraction

MAX_FORMULA_CHARS = 256
"""Longest formula (after normalisation) that is parsed at all."""
MAX_LITERALS = 16
"""Most integer literals a formula may contain."""
MAX_DEPTH = 24
"""Deepest nesting of operations (and parentheses) accepted."""
MAX_LITERAL_DIGITS = 6
"""Longest integer literal accepted (cards are at most two digits)."""

# Characters models write for the four operations, mapped to ASCII. Documented in docs/task.md ("Answers").
_OPERATOR_ALIASES = {
    "×": "*", "✕": "*", "∗": "*", "·": "*", "⋅": "*", "x": "*", "X": "*",
    "÷": "/", "∕": "/",
    "−": "-", "–": "-", "—": "-",
    "[": "(", "]": ")", "{": "(", "}": ")",
}
_LEGAL = re.compile(r"[0-9+\-*/() ]*")


class FormulaError(ValueError):
    """The text is not a legal formula (the verdict is ``malformed``)."""


@dataclass(frozen=True)
class Evaluated:
    """A legal formula: its literals in order of appearance and its exact value (``None``: division by 0)."""

    formula: str
    literals: tuple[int, ...]
    value: Fraction | None


def normalise(text: str) -> str:
    """Map operator look-alikes to ASCII, drop whitespace; no other change."""
    out = []
    for ch in text:
        ch = _OPERATOR_ALIASES.get(ch, ch)
        if ch.isspace():
            continue
        out.append(ch)
    return "".join(out)


def evaluate_formula(text: str) -> Evaluated:
    """Parse and evaluate one formula exactly, or raise :class:`FormulaError` saying why.

    The text must be the expression alone (no ``= 24`` tail; see ``answers.extract_formula``).
    """
    if len(text) > 4 * MAX_FORMULA_CHARS:
        raise FormulaError(f"formula longer than {MAX_FORMULA_CHARS} characters")
    formula = normalise(text)
    if not formula:
        raise FormulaError("empty formula")
    if len(formula) > MAX_FORMULA_CHARS:
        raise FormulaError(f"formula longer than {MAX_FORMULA_CHARS} characters")
    if not _LEGAL.fullmatch(formula):
        bad = sorted({c for c in formula if not _LEGAL.fullmatch(c)})
        raise FormulaError(f"illegal characters {''.join(bad)!r}")
    depth = 0
    for ch in formula:  # bound nesting before the parser sees it
        depth += ch == "("
        depth -= ch == ")"
        if depth > MAX_DEPTH:
            raise FormulaError(f"nesting deeper than {MAX_DEPTH}")
        if depth < 0:
            raise FormulaError("unbalanced parentheses")
    if depth != 0:
        raise FormulaError("unbalanced parentheses")
    if re.search(r"\d{%d,}" % (MAX_LITERAL_DIGITS + 1), formula):
        raise FormulaError(f"integer literal longer than {MAX_LITERAL_DIGITS} digits")
    if re.search(r"(^|[^0-9])0[0-9]", formula):
        raise FormulaError("integer literal with a leading zero")
    if len(re.findall(r"\d+", formula)) > MAX_LITERALS:
        raise FormulaError(f"more than {MAX_LITERALS} numbers")
    try:
        tree = ast.parse(formula, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise FormulaError(f"not an arithmetic expression ({type(exc).__name__})") from None
    literals: list[int] = []
    value = _walk(tree.body, literals, 0)
    return Evaluated(formula=formula, literals=tuple(literals), value=value)


_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div)


def _walk(node: ast.AST, literals: list[int], depth: int) -> Fraction | None:
    if depth > 2 * MAX_DEPTH:
        raise FormulaError(f"nesting deeper than {MAX_DEPTH}")
    if isinstance(node, ast.Constant):
        if type(node.value) is not int:  # bool is an int subclass; floats and strings are illegal
            raise FormulaError(f"illegal literal {node.value!r}")
        literals.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, _OPS):
        left = _walk(node.left, literals, depth + 1)
        right = _walk(node.right, literals, depth + 1)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if right == 0:
            return None
        return left / right
    if isinstance(node, ast.UnaryOp):
        raise FormulaError("unary operators are not allowed (use every card once with + - * /)")
    raise FormulaError(f"illegal syntax {type(node).__name__}")
