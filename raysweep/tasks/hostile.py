"""Hostile model answers for the verifier: a seeded generator in named categories, and a check that a
verdict is sane, by an exact evaluation independent of the verifier.

``hostile_cases(n, seed)`` yields ``n`` :class:`Case` s (categories in turn, each case reproducible from
``(seed, index)`` alone): huge literals, exponents, deep nesting, 100 kB inputs, unicode tricks, code
injection, wrappers, almost-correct formulas, division by zero, floats, unary chains, foreign operators,
garbage, regex stress, too many numbers, and valid answers (the control group, whose verdict under their
rule is known). ``check(case, rule, target, reward, score)`` lists what is wrong with a :class:`Score`:
a verdict outside the verifier's set, a reward that does not match it, a verdict that the independent
evaluation (a small recursive-descent parser over :class:`~fractions.Fraction`, sharing no code with
:mod:`raysweep.tasks.verifier`) contradicts, a legal in-bounds formula called malformed, or a verdict a
category excludes (:data:`EXPECT`: floats, exponents, unary signs and huge literals are always malformed).
Used by ``bench/hostile_answers.py`` (timing) and ``tests/test_hostile_answers.py``. Nothing here evaluates
text as code.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterator, Sequence

from raysweep.tasks.generalpoints import RANKS, REWARD_SCHEMES, VERDICTS, Score, resolve_rule

TARGET = 24
RULES: tuple[str, ...] = ("id", "ood")
CANARY = os.path.join(tempfile.gettempdir(), "raysweep-hostile-canary")
"""A file the code-injection payloads try to create; it must never appear."""

# the verifier's documented bounds (docs/task.md, "The verifier"), restated here so the check is independent
_MAX_FORMULA = 256
_MAX_RAW_FORMULA = 4 * _MAX_FORMULA
_MAX_LITERALS = 16
_MAX_DEPTH = 24
_MAX_DIGITS = 6


@dataclass(frozen=True)
class Case:
    """One hostile answer to one hand. ``expect``: (rule, verdicts): under that rule (None: under any), the
    verdict must be one of these (valid answers: correct under their rule; floats: malformed; ...)."""

    index: int
    category: str
    cards: tuple[str, ...]
    text: str
    expect: tuple[str | None, tuple[str, ...]] | None = None


@dataclass(frozen=True)
class Hand:
    """A dealt hand, its values under each rule, and one solution under ``rule`` (None: unsolvable)."""

    cards: tuple[str, ...]
    values: dict[str, tuple[int, ...]]
    rule: str
    solution: str | None

    @property
    def nums(self) -> tuple[int, ...]:
        return self.values[self.rule]

    def formula(self, rng: random.Random) -> str:
        """The solution, or a random formula over the hand's values when there is none."""
        return self.solution or random_formula(rng, self.nums)


def deal_hand(rng: random.Random) -> Hand:
    """A random hand of 2 to 6 cards with a solution under a random rule, built backwards from the target
    (no search: fast); random cards without a solution in the rare case the construction fails."""
    rule = rng.choice(RULES)
    k = rng.choice((2, 3, 4, 4, 4, 4, 5, 6))
    vmax = max(resolve_rule(rule).values.values())
    for _ in range(1000):
        built = _build(rng, k, TARGET, vmax)
        if built is not None:
            formula, nums = built
            order = list(range(k))
            rng.shuffle(order)
            cards = tuple(_rank_of(rng, rule, nums[i]) for i in order)
            values = {r: tuple(resolve_rule(r).value(c) for c in cards) for r in RULES}
            return Hand(cards, values, rule, formula[1:-1] if formula.startswith("(") else formula)
    cards = tuple(rng.choice(RANKS) for _ in range(k))
    return Hand(cards, {r: tuple(resolve_rule(r).value(c) for c in cards) for r in RULES}, rule, None)


def _build(rng: random.Random, k: int, goal: int, vmax: int) -> tuple[str, list[int]] | None:
    """One random try at a formula of ``k`` values in 1..vmax that equals ``goal`` (integers all along)."""
    if k == 1:
        return (str(goal), [goal]) if 1 <= goal <= vmax else None
    op = rng.choice("+-*/")
    if op == "+":
        if goal < 2:
            return None
        x = rng.randint(1, goal - 1)
        y = goal - x
    elif op == "-":
        y = rng.randint(1, 2 * vmax)
        x = goal + y
    elif op == "*":
        x = rng.choice([d for d in range(1, goal + 1) if goal % d == 0])
        y = goal // x
    else:
        y = rng.randint(1, vmax)
        x = goal * y
    k1 = rng.randint(1, k - 1)
    left = _build(rng, k1, x, vmax)
    right = None if left is None else _build(rng, k - k1, y, vmax)
    if left is None or right is None:
        return None
    return f"({left[0]}{op}{right[0]})", left[1] + right[1]


def _rank_of(rng: random.Random, rule: str, value: int) -> str:
    """A card worth ``value`` under ``rule`` (a random one of several)."""
    return rng.choice([c for c in RANKS if resolve_rule(rule).value(c) == value])


def random_formula(rng: random.Random, nums: Sequence[int]) -> str:
    """A random fully parenthesised formula using each number once."""
    parts = [str(v) for v in nums]
    rng.shuffle(parts)
    while len(parts) > 1:
        i = rng.randrange(len(parts) - 1)
        parts[i:i + 2] = [f"({parts[i]}{rng.choice('+-*/')}{parts[i + 1]})"]
    return parts[0]


def _wrap(rng: random.Random, formula: str) -> str:
    """The formula in one of the shapes a model writes (bare, compact line, JSON, markdown)."""
    return rng.choice((
        formula,
        f"Formula: {formula}=24",
        f'{{"formula": "{formula}=24"}}',
        f"Let me think step by step.\n{formula} = 24",
        f"**Formula:** `{formula}`",
        f"```\n{formula}\n```",
    ))


def _digits(rng: random.Random, k: int) -> str:
    return rng.choice("123456789") + "".join(rng.choices("0123456789", k=k - 1))


# --------------------------------------------------------------------------------------- categories


def _huge_number(rng: random.Random, h: Hand) -> str:
    lit = _digits(rng, rng.choice((7, 20, 300, 4301, 10_000, 100_000)))
    f = h.formula(rng)
    return rng.choice((
        _wrap(rng, lit), _wrap(rng, f"{lit}*1"), _wrap(rng, f"{f}*{lit}/{lit}"), _wrap(rng, f"{lit}-{lit}+{f}"),
        f"Formula: {'0' * len(lit)}24", f"Formula: {f}+0{'0' * min(len(lit), 5000)}",
    ))


_EXPONENTS = ("9**9**9", "(9**9)**9", "2**2**2**2**2", "10**10000", "10**1000000", "9^9^9", "pow(9, 9**9)",
              "1e10000", "2**-1", "(-1)**0.5", "24**1", "2**3*3", "9 ** 9 ** 9 = 24", "1<<100000",
              "math.pow(2, 1e9)", "10 ^ 10 ^ 10", "8*3**1", "24e0", "9**(9**(9**9))")


def _exponent(rng: random.Random, h: Hand) -> str:
    return _wrap(rng, rng.choice(_EXPONENTS + (f"({h.formula(rng)})**1", f"({h.formula(rng)})**9**9")))


def _deep_nesting(rng: random.Random, h: Hand) -> str:
    k = rng.choice((24, 25, 30, 100, 1000, 3000, 6000))
    f = h.formula(rng)
    chain = str(h.nums[0])
    for v in h.nums[1:] * (k // max(1, len(h.nums))):
        chain = f"({chain}+{v})"
        if len(chain) > 20_000:
            break
    return _wrap(rng, rng.choice((
        "(" * k + f + ")" * k, "(" * k + f, f + ")" * k, "[" * k + f + "]" * k, "{" * k + f + "}" * k,
        "-(" * k + f + ")" * k, "((" * (k // 2) + f + "))" * (k // 2), chain, ")" * k + f + "(" * k,
    )))


_FILLERS = ("1+", "(", "Formula: ", "the answer is ", "🤔", " ", "\n", "=", "x", "24 ", "Formula: 1+1\n")


def _long_input(rng: random.Random, h: Hand) -> str:
    size = rng.choice((8191, 8192, 8193, 20_000, 100_000, 150_000))
    filler = rng.choice(_FILLERS)
    tail = "\n" + _wrap(rng, h.formula(rng))
    body = (filler * (size // len(filler) + 1))[: max(0, size - len(tail))]
    return rng.choice((body + tail, tail + body, body))


_MARKS = ("\u200f", "\u202e", "\u2066", "\u200b", "\ufeff", "\u0301", "\u00a0", "\u2028", "\x00", "\ud800",
          "\udfff", "🤔", "24️⃣", "✅", "\u3000", "\x1c", "\x85")


def _digit_map(base: int) -> Callable[[str], str]:
    return lambda s: "".join(chr(base + int(c)) if c.isdigit() else c for c in s)


_UNICODE_MAPS: tuple[Callable[[str], str], ...] = (
    _digit_map(0xFF10),      # full-width digits
    _digit_map(0x0660),      # Arabic-Indic digits
    _digit_map(0x0966),      # Devanagari digits
    _digit_map(0x1D7CE),     # mathematical bold digits
    lambda s: s.translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")),
    lambda s: s.translate(str.maketrans("+-*/()", "＋－＊／（）")),  # full-width operators
    lambda s: s.translate(str.maketrans("*/-", "×÷−")),  # accepted aliases
    lambda s: s.translate(str.maketrans("-/", "‐⁄")),     # hyphen, fraction slash: not aliases
)


def _unicode(rng: random.Random, h: Hand) -> str:
    f = h.formula(rng)
    how = rng.randrange(4)
    if how == 0:
        f = rng.choice(_UNICODE_MAPS)(f)
    elif how == 1:
        mark = rng.choice(_MARKS)
        i = rng.randrange(len(f) + 1)
        f = f[:i] + mark * rng.choice((1, 1, 3, 100)) + f[i:]
    elif how == 2:
        f = "".join(c + (rng.choice(_MARKS) if rng.random() < 0.3 else "") for c in f)
    else:
        f = rng.choice(('\\ud83d\\ude00', '\\u0032\\u0034', '\\ud800' + f, f + '\\x00', '\\N{DIGIT TWO}4'))
    return _wrap(rng, f)


_PAYLOADS = (
    f"__import__('os').system('touch {CANARY}')",
    f"__import__('pathlib').Path('{CANARY}').touch()",
    f"f\"{{__import__('os').system('touch {CANARY}')}}\"",
    f"(lambda: __import__('os').system('touch {CANARY}'))()",
    f"exec(\"open('{CANARY}', 'w')\")",
    f"$(touch {CANARY})", f"`touch {CANARY}`", f"24; import os; os.system('touch {CANARY}')",
    "lambda: 24", "(lambda x: x)(24)", "f'{24}'", "eval('24')", "compile('24', '', 'eval')",
    "().__class__.__bases__[0].__subclasses__()", "(24).__class__", "24 .real", "(24).__add__(0)",
    "__builtins__.__dict__['eval']('24')", "globals()", "open('/etc/passwd').read()", "print(24)",
    "__import__('time').sleep(100)", "breakpoint()", "(x := 24)", "[24][0]", "{'a': 24}['a']", "*[24]",
    "sum([8, 8, 8])", "int('24')", "24 if True else 0", "[x for x in range(10**9)]", "{{24}}", "${24}",
    "'; DROP TABLE answers; --", "<script>alert(24)</script>", "\\x32\\x34", "r'24'", "b'24'", "24j",
)


def _code_injection(rng: random.Random, h: Hand) -> str:
    p = rng.choice(_PAYLOADS)
    return rng.choice((_wrap(rng, p), _wrap(rng, f"{h.formula(rng)}+{p}"), f"Formula: {p}\n{h.formula(rng)}"))


def _wrapper(rng: random.Random, h: Hand) -> str:
    f = h.formula(rng)
    return rng.choice((
        json.dumps({"cards": list(h.cards), "number": list(h.nums), "formula": f + "=24"}),
        json.dumps({"answer": {"formula": f}}),
        json.dumps({"formula": [f]}), json.dumps({"formula": 24}), json.dumps({"formula": f}, ensure_ascii=True),
        "{'formula': '" + f + "'}", '{"formula": "' + f + '"', '{"formula": "' + f.replace("(", "\\(") + '"}',
        f"```json\n{json.dumps({'formula': f})}\n```", f"### Formula\n{f} = 24",
        "$$" + f.replace("*", r" \times ") + "$$",
        f"<formula>{f}</formula>", f"formula: {f}", f"Formula: 1+1\nFormula: {f}", f"Formula: {f}\nFormula: 1+1",
        f"Numbers: {', '.join(map(str, h.nums))}\nFormula: {f}=24\nAnswer: 24", f"FORMULA={f}", f"formula：{f}",
        f"I think the formula is {f}.", f"Answer:\n\n    {f}\n", f"> Formula: {f}",
    ))


def _almost_correct(rng: random.Random, h: Hand) -> str:
    f = h.formula(rng)
    digits = [i for i, c in enumerate(f) if c.isdigit()]
    i = rng.choice(digits)
    other_rule = h.values[RULES[1 - RULES.index(h.rule)]]
    mutated = rng.choice((
        f[:i] + str((int(f[i]) + 1) % 10) + f[i + 1:],                                       # a digit off
        f + "+0", f + "*1", f + "/1", f"({f})-0", f"{f}+{h.nums[0]}", f"{h.nums[0]}*({f})",  # extra numbers
        f.replace("(", "", 1), f.replace(")", "", 1), f + "+", "*" + f, f + "=", "=" + f,    # broken forms
        f.replace("+", "-", 1), f.replace("*", "/", 1), f.replace("-", "+", 1),             # wrong operator
        "+".join(map(str, h.nums)), "*".join(map(str, h.nums)), "".join(map(str, h.nums)),   # naive / merged
        random_formula(rng, other_rule), random_formula(rng, h.nums[:-1]), f"{f}={TARGET + 1}", f"{TARGET}",
    ))
    return _wrap(rng, mutated)


def _division_by_zero(rng: random.Random, h: Hand) -> str:
    f = h.formula(rng)
    a, b = h.nums[0], h.nums[-1]
    rest = "+".join(map(str, h.nums[1:-1])) or "0"
    return _wrap(rng, rng.choice((
        f"{f}/0", "0/0", "24/0", f"{f}+{a}/({b}-{b})", f"({rest})/({a}-{a})" if a == b else f"({rest})/({a}-{b})",
        f"{a}/({b}-{b})*0+{f}", f"({f})/({f}-{f})", "1/(1/0)", f"{a}/(({b}-{b})/{a})",
    )))


def _floats(rng: random.Random, h: Hand) -> str:
    f = h.formula(rng)
    i = next((j for j, c in enumerate(f) if c.isdigit()), 0)
    return _wrap(rng, rng.choice((
        f[:i + 1] + ".0" + f[i + 1:], f[:i] + "." + f[i:], "24.0", ".24e2", "2.4e1", "23.999999999999996",
        "8.0*3", "1_2*2", "0o30", "0b11000", "inf", "nan", "1e-5", "3,0*8", "0.5*48", f"({f})*1.0", "24.0.",
    )))


def _unary(rng: random.Random, h: Hand) -> str:
    f = h.formula(rng)
    k = rng.choice((1, 2, 3, 50, 300, 1000))
    return _wrap(rng, rng.choice((
        "-" * k + "24", "+" * k + f, "-" * k + f, f"-(-({f}))", f"{f}-(-0)", f"{f}--0", f"~{f}", f"not {f}",
        "- " * k + "24", f"-{h.nums[0]}+{h.nums[0]}+{f}", f"({f})*-1*-1", "-0", "+24",
    )))


_FOREIGN_OPS = ("//", "%", "@", "<<", ">>", "&", "|", "^", "==", "<", ">=", " and ", " or ", " if ", "**", "!",
                "**-", ",", ";", ":", ".", "..", "=>", "->")


def _operators(rng: random.Random, h: Hand) -> str:
    f = h.formula(rng)
    op = rng.choice(_FOREIGN_OPS)
    j = next((i for i, c in enumerate(f) if c in "+-*/"), None)
    if rng.random() < 0.1:
        return _wrap(rng, rng.choice(("0x18", "2 x 12", "2X12", "8·3", "8⋅3", "8✕3", "8∗3", "8∕3")))  # aliases
    return _wrap(rng, f"{h.nums[0]}{op}{h.nums[-1]}" if j is None or rng.random() < 0.3 else f[:j] + op + f[j + 1:])


def _garbage(rng: random.Random, h: Hand) -> str:
    n = rng.choice((0, 1, 5, 50, 500, 5000))
    how = rng.randrange(5)
    if how == 0:
        return "".join(chr(rng.randrange(0x110000)) for _ in range(n))  # any code point, surrogates included
    if how == 1:
        return bytes(rng.randrange(256) for _ in range(n)).decode("latin-1")
    if how == 2:
        return "".join(rng.choices("+-*/()= \n", k=n))
    if how == 3:
        return "".join(rng.choices("0123456789+-*/()", k=n))
    return rng.choice(("", " ", "\n" * 1000, "\t", "\r\n", "None", "null", "undefined", "NaN", "24"))


def _regex_stress(rng: random.Random, h: Hand) -> str:
    f = h.formula(rng)
    return rng.choice((
        '"formula": "' + "x" * 8000, '"formula"' + " " * 8000 + ":", "formula" * 1100,
        "\n".join(["****formula****"] * 500), "Formula:" + " " * 8000 + f, "Formula: " + "(" * 600,
        '{"formula": "' + "1+" * 300 + '1"}', "Formula: " + f + "\r\n" * 1000, "=" * 8000, "1=" * 4000,
        "\n".join(["1+"] * 4000), "Formula: " + f + "\u2028Formula: 1", "'formula': '" * 700, "formula:" * 1000,
        ("Numbers: 1, 2\n" * 500) + f, "Formula:\n" * 1000 + f, "(" * 4000 + ")" * 4000,
    ))


def _many_numbers(rng: random.Random, h: Hand) -> str:
    k = rng.choice((15, 16, 17, 100, 1000))
    f = h.formula(rng)
    return _wrap(rng, rng.choice(("+".join(["1"] * k), f + "+1-1" * (k // 2), "*".join(["1"] * k) + f"*{f}")))


def _valid(rng: random.Random, h: Hand) -> str:
    f = h.formula(rng)
    spaced = "".join(f" {c} " if c in "+-*/()" else c for c in f)  # spaces around operators only
    return rng.choice((
        f"Numbers: {', '.join(map(str, h.nums))}\nFormula: {f}=24",
        json.dumps({"cards": list(h.cards), "number": list(h.nums), "formula": f"{f}=24"}),
        f, f"{f} = 24", f"24 = {f}", spaced, f.translate(str.maketrans("*/-", "×÷−")),
        f.translate(str.maketrans("()", "[]")), f"Let me think.\n{f}=24", f"**Formula:** `{f} = 24`",
    ))


CATEGORIES: dict[str, Callable[[random.Random, Hand], str]] = {
    "huge_number": _huge_number, "exponent": _exponent, "deep_nesting": _deep_nesting,
    "long_input": _long_input, "unicode": _unicode, "code_injection": _code_injection, "wrapper": _wrapper,
    "almost_correct": _almost_correct, "division_by_zero": _division_by_zero, "floats": _floats,
    "unary": _unary, "operators": _operators, "garbage": _garbage, "regex_stress": _regex_stress,
    "many_numbers": _many_numbers, "valid": _valid,
}
"""Category name -> generator (rng, hand) -> answer text."""

EXPECT: dict[str, tuple[str, ...]] = {
    "huge_number": ("malformed",), "exponent": ("malformed",), "unary": ("malformed",), "floats": ("malformed",),
    "code_injection": ("malformed", "wrong_cards"),
}
"""Verdicts every answer of a category must get, under any rule (the documented legal forms exclude them)."""


def make_case(index: int, seed: int = 0) -> Case:
    """Case ``index`` of seed ``seed`` (category ``index mod`` the number of categories); reproducible alone."""
    rng = random.Random(f"raysweep-hostile:{seed}:{index}")
    name = list(CATEGORIES)[index % len(CATEGORIES)]
    hand = deal_hand(rng)
    text = CATEGORIES[name](rng, hand)
    expect: tuple[str | None, tuple[str, ...]] | None = (None, EXPECT[name]) if name in EXPECT else None
    if name == "valid" and hand.solution:
        expect = (hand.rule, ("correct",))
    return Case(index, name, hand.cards, text, expect)


def hostile_cases(n: int, seed: int = 0) -> Iterator[Case]:
    """``n`` hostile answers, the categories in turn."""
    for i in range(n):
        yield make_case(i, seed)


# --------------------------------------------------------------------------------------- the check


class NotAFormula(ValueError):
    """The independent parser does not read the text as a formula."""


def exact_value(formula: str) -> tuple[Fraction | None, tuple[int, ...]]:
    """(exact value or None on division by zero, literals in order) of an ASCII formula over ``0-9 + - * /
    ( )`` (spaces ignored; no unary signs): an independent recursive-descent parser."""
    s = formula.replace(" ", "")
    if not s or any(c not in "0123456789+-*/()" for c in s):
        raise NotAFormula(formula)
    pos = 0
    nums: list[int] = []

    def peek() -> str:
        return s[pos] if pos < len(s) else ""

    def expr(depth: int) -> Fraction | None:
        nonlocal pos
        value = term(depth)
        while peek() in ("+", "-"):
            op = s[pos]
            pos += 1
            rhs = term(depth)
            value = None if value is None or rhs is None else value + rhs if op == "+" else value - rhs
        return value

    def term(depth: int) -> Fraction | None:
        nonlocal pos
        value = factor(depth)
        while peek() in ("*", "/"):
            op = s[pos]
            pos += 1
            rhs = factor(depth)
            if value is None or rhs is None or (op == "/" and rhs == 0):
                value = None
            else:
                value = value * rhs if op == "*" else value / rhs
        return value

    def factor(depth: int) -> Fraction | None:
        nonlocal pos
        if depth > 200:
            raise NotAFormula("too deep for the checker")
        if peek() == "(":
            pos += 1
            value = expr(depth + 1)
            if peek() != ")":
                raise NotAFormula(formula)
            pos += 1
            return value
        start = pos
        while peek().isdigit():
            pos += 1
        if start == pos:
            raise NotAFormula(formula)
        nums.append(int(s[start:pos]))
        return Fraction(nums[-1])

    value = expr(0)
    if pos != len(s):
        raise NotAFormula(formula)
    return value, tuple(nums)


def within_bounds(formula: str) -> bool:
    """Whether an ASCII formula is inside the verifier's documented bounds (length, numbers, nesting,
    literal digits, no leading zeros): such a formula must not be called malformed."""
    s = formula.replace(" ", "")
    if len(formula) > _MAX_RAW_FORMULA or len(s) > _MAX_FORMULA:
        return False
    depth = 0
    for c in s:
        depth += (c == "(") - (c == ")")
        if depth > _MAX_DEPTH:
            return False
    literals, cur = [], ""
    for c in s + "+":
        if c.isdigit():
            cur += c
        elif cur:
            literals.append(cur)
            cur = ""
    return (len(literals) <= _MAX_LITERALS and all(len(x) <= _MAX_DIGITS for x in literals)
            and not any(len(x) > 1 and x[0] == "0" for x in literals))


def expected_verdict(formula: str, values: Sequence[int], target: int) -> str:
    """The verdict a legal formula must get (the order of ``score``: numbers, then division by zero, then
    value); raises :class:`NotAFormula` when the checker cannot read it."""
    value, nums = exact_value(formula)
    if sorted(nums) != sorted(values):
        return "wrong_cards"
    if value is None or value != target:
        return "wrong_value"
    return "correct"


def check(case: Case, rule: str, target: int, reward: str, s: object) -> list[str]:
    """What is wrong with ``s`` as the score of ``case`` under ``rule`` (empty: sane)."""
    if not isinstance(s, Score):
        return [f"score returned {type(s).__name__}, not a Score"]
    problems = []
    if s.verdict not in VERDICTS:
        return [f"verdict {s.verdict!r} not in {VERDICTS}"]
    if s.reward != REWARD_SCHEMES[reward][s.verdict]:
        problems.append(f"reward {s.reward} != {REWARD_SCHEMES[reward][s.verdict]} for {s.verdict} ({reward})")
    values = [resolve_rule(rule).value(c) for c in case.cards]
    if case.expect is not None and case.expect[0] in (None, rule) and s.verdict not in case.expect[1]:
        problems.append(f"{s.verdict} ({s.detail}) for a {case.category} answer; expected one of {case.expect[1]}")
    if s.verdict == "malformed":
        if s.value is not None:
            problems.append("malformed with a value")
        if isinstance(s.formula, str) and s.formula.isascii() and within_bounds(s.formula):
            try:
                exact_value(s.formula)
                problems.append(f"a legal formula {s.formula!r} was called malformed ({s.detail})")
            except NotAFormula:
                pass
        return problems
    if not isinstance(s.formula, str):
        return problems + [f"{s.verdict} without a formula"]
    try:
        want = expected_verdict(s.formula, values, target)
        value, nums = exact_value(s.formula)
    except NotAFormula:
        return problems + [f"{s.verdict} for {s.formula[:80]!r}, which is not a formula"]
    if not within_bounds(s.formula):
        problems.append(f"{s.verdict} for a formula outside the bounds ({len(s.formula)} chars)")
    if s.verdict != want:
        problems.append(f"{s.verdict} but {s.formula!r} with values {sorted(values)} is {want} (value {value})")
    if sorted(s.numbers) != sorted(nums):
        problems.append(f"numbers {s.numbers} != {nums}")
    if s.value != value:
        problems.append(f"value {s.value} != {value}")
    if s.verdict == "correct" and s.value != target:
        problems.append(f"correct with value {s.value} != {target}")
    return problems
