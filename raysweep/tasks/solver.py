"""Exact solver for GeneralPoints: every distinct formula over a hand that reaches the target.

Two formulas are the same solution when they are equal up to commutativity and associativity of
``+`` and ``*`` (and the matching rewrites of ``-`` and ``/``): ``(a+b)-c``, ``a-(c-b)`` and ``b+a-c``
are one solution. Each solution is rendered in one canonical text with the fewest parentheses, so
distinct solutions have distinct strings. Arithmetic is exact (:class:`~fractions.Fraction`).
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import Iterable

# A canonical form is a hashable, totally ordered tuple:
#   ("n", v)                    integer literal v
#   ("P", (num...), (den...))   product: num[0]*num[1]*.../den[0]/den[1]...
#   ("S", (pos...), (neg...))   sum: pos[0]+pos[1]+...-neg[0]-neg[1]...
# (P sorts before S and after n, since "P" < "S" < "n" as strings: the order only has to be total.)
Canon = tuple


def _parts(c: Canon, tag: str) -> tuple[tuple, tuple]:
    return (c[1], c[2]) if c[0] == tag else ((c,), ())


def _combine(tag: str, a: Canon, b: Canon, invert_b: bool) -> Canon:
    ap, an = _parts(a, tag)
    bp, bn = _parts(b, tag)
    if invert_b:
        bp, bn = bn, bp
    return (tag, tuple(sorted(ap + bp)), tuple(sorted(an + bn)))


def render(c: Canon) -> str:
    """The canonical text of a canonical form, with the fewest parentheses."""
    tag = c[0]
    if tag == "n":
        return str(c[1])
    if tag == "S":
        text = "+".join(render(t) for t in c[1])
        return text + "".join("-" + render(t) for t in c[2])

    def factor(t: Canon) -> str:
        return f"({render(t)})" if t[0] == "S" else render(t)

    text = "*".join(factor(t) for t in c[1])
    return text + "".join("/" + factor(t) for t in c[2])


def _moves(a: tuple[Fraction, Canon], b: tuple[Fraction, Canon]) -> Iterable[tuple[Fraction, Canon]]:
    (va, ca), (vb, cb) = a, b
    yield va + vb, _combine("S", ca, cb, False)
    yield va - vb, _combine("S", ca, cb, True)
    yield vb - va, _combine("S", cb, ca, True)
    yield va * vb, _combine("P", ca, cb, False)
    if vb != 0:
        yield va / vb, _combine("P", ca, cb, True)
    if va != 0:
        yield vb / va, _combine("P", cb, ca, True)


def solve(values: Iterable[int], target: int = 24, limit: int | None = None) -> list[str]:
    """Every distinct solution (canonical text, sorted), or the first ``limit`` found.

    ``values`` are the card values under a rule (not ranks). Cost grows fast with the hand size:
    4 cards take milliseconds; 6 cards can take seconds (use ``limit`` or :func:`is_solvable`).
    """
    items = [(Fraction(v), ("n", int(v))) for v in values]
    if not items:
        return []
    goal = Fraction(target)
    found: set[Canon] = set()
    seen: set[tuple] = set()

    def dfs(state: list[tuple[Fraction, Canon]]) -> bool:
        if len(state) == 1:
            if state[0][0] == goal and state[0][1] not in found:
                found.add(state[0][1])
                return limit is not None and len(found) >= limit
            return False
        key = tuple(sorted(c for _, c in state))
        if key in seen:
            return False
        seen.add(key)
        n = len(state)
        for i in range(n):
            for j in range(i + 1, n):
                rest = [state[k] for k in range(n) if k != i and k != j]
                for move in _moves(state[i], state[j]):
                    if dfs(rest + [move]):
                        return True
        return False

    dfs(items)
    return sorted(render(c) for c in found)


@lru_cache(maxsize=65536)
def _reachable_solvable(values: tuple[Fraction, ...], goal: Fraction) -> bool:
    if len(values) == 1:
        return values[0] == goal
    n = len(values)
    for i in range(n):
        for j in range(i + 1, n):
            rest = tuple(values[k] for k in range(n) if k != i and k != j)
            a, b = values[i], values[j]
            outs = {a + b, a - b, b - a, a * b}
            if b != 0:
                outs.add(a / b)
            if a != 0:
                outs.add(b / a)
            for v in outs:
                if _reachable_solvable(tuple(sorted(rest + (v,))), goal):
                    return True
    return False


def is_solvable(values: Iterable[int], target: int = 24) -> bool:
    """Whether any formula using every value exactly once reaches ``target`` (memoised, exact)."""
    vals = tuple(sorted(Fraction(v) for v in values))
    return bool(vals) and _reachable_solvable(vals, Fraction(target))
