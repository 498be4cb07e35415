"""GeneralPoints: cards, rules, dealing, prompts and scoring.

A hand of ``num_cards`` cards is dealt from one shuffled deck (four of each rank, ranks limited to
``ranks``); the answer is a formula that uses every card's value exactly once and equals ``target``.
A *rule* maps ranks to values and is data: ``id`` (J, Q, K count 10) and ``ood`` (J, Q, K count 11, 12,
13) are built in, and a task config may define others. Hands for a rule other than the training rule
contain at least one card whose value the two rules disagree on (for ``ood``: a face card), so they
test the new rule and not memory.

Train and evaluation hands are disjoint: every hand *multiset* falls, by a seeded hash, either in the
evaluation pool (fraction ``eval_fraction``) or the training pool, for every rule and dataset seed.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from raysweep.tasks.answers import ANSWER_FORMATS, AnswerFormat, extract_formula, format_instructions
from raysweep.tasks.solver import is_solvable
from raysweep.tasks.verifier import FormulaError, evaluate_formula

RANKS: tuple[str, ...] = ("A", "2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K")
FACE_RANKS: tuple[str, ...] = ("J", "Q", "K")
_NATURAL = {r: i + 1 for i, r in enumerate(RANKS)}  # A=1 .. 10=10, J=11, Q=12, K=13


@dataclass(frozen=True)
class Rule:
    """How ranks count. ``values`` must cover every rank the task deals."""

    name: str
    values: Mapping[str, int]
    description: str = ""
    """Phrase used in the prompt, e.g. "'J', 'Q', and 'K' count as '10'"; derived when empty."""

    def value(self, rank: str) -> int:
        return self.values[rank]

    def text(self) -> str:
        return self.description or describe_rule(self.values)


def describe_rule(values: Mapping[str, int]) -> str:
    """The paper's phrasing of a rule: the face cards (and any rank not counting its face value)."""
    named = [r for r in RANKS if r in values and (r in FACE_RANKS or values[r] != _NATURAL[r])]
    if not named:
        return "every card counts as its number"
    quoted = [f"'{r}'" for r in named]
    who = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + (", and " if len(quoted) > 2 else " and ") + quoted[-1]
    vals = [values[r] for r in named]
    if len(set(vals)) == 1:
        return f"{who} count as '{vals[0]}'" if len(named) > 1 else f"{who} counts as '{vals[0]}'"
    qv = [f"'{v}'" for v in vals]
    vtext = ", ".join(qv[:-1]) + (", and " if len(qv) > 2 else " and ") + qv[-1]
    return f"{who} count as {vtext} respectively"


def _rule_values(face: Mapping[str, int]) -> dict[str, int]:
    vals = {r: _NATURAL[r] for r in RANKS}
    vals.update(face)
    return vals


BUILTIN_RULES: dict[str, Rule] = {
    "id": Rule("id", _rule_values({"J": 10, "Q": 10, "K": 10})),
    "ood": Rule("ood", _rule_values({"J": 11, "Q": 12, "K": 13})),
}

Purpose = Literal["sft", "rl", "eval"]
_LATER_FIELDS = {"prompt_style": "paper", "face_values": None, "face_tied": 0.0, "target_values": None,
                 "targets": None}
"""TaskConfig fields added after trunks were first made, with the default that leaves data unchanged."""


class TaskConfig(BaseModel):
    """The GeneralPoints task: hand size, target, ranks, rules, answer format and data splits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_cards: int = Field(4, ge=2, le=6, description="Cards per hand (2 to 6).")
    target: int = Field(24, ge=1, le=10_000, description="The value every formula must reach.")
    ranks: tuple[str, ...] = Field(RANKS, description="Ranks the deck holds (a rank range), e.g. [A, '2', ..., K].")
    train_rule: str = Field("id", description="Rule used for SFT data, RL prompts and the ID evaluation.")
    eval_rules: tuple[str, ...] = Field(("id", "ood"), description="Rules evaluated (ID first, then OOD rules).")
    rules: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="Extra rules by name: rank -> value (ranks not named count as A=1, 2..10, J=11, Q=12, K=13).",
    )
    answer_format: AnswerFormat = Field("compact", description="'json' (the paper's) or 'compact' (two short lines).")
    eval_fraction: float = Field(0.25, gt=0.0, lt=1.0, description="Share of hand multisets kept for evaluation only.")
    split_seed: int = Field(0, description="Seed of the train/eval split of hand multisets.")
    reward: Literal["binary", "paper"] = Field("binary", description="binary (1/0) or the paper's +5/-1/-2/-3 scale.")
    prompt_style: Literal["paper", "short"] = Field(
        "paper", description="'paper': the paper's full task description; 'short': one line of rule and target, "
        "then the cards (same rule wording; ~8x fewer tokens, for small from-scratch models).")
    face_values: tuple[int, int] | None = Field(
        None, description="Vary the rule per SFT/RL example (a pre-training stage that teaches reading the rule): "
        "J, Q and K each count as a random value in [low, high], stated in the prompt; a draw equal to an "
        "evaluated rule is redrawn. None: every example uses train_rule.")
    face_tied: float = Field(
        0.0, ge=0.0, le=1.0, description="With face_values: the share of rules where J, Q and K share one value "
        "(the ID rule's phrasing, \"count as 'v'\"); the others draw each value on its own (the OOD rule's "
        "phrasing, \"count as 'a', 'b', and 'c' respectively\").")

    target_values: tuple[int, int] | None = Field(
        None, description="With face_values: vary the target too, per example, in [low, high] (stated in the prompt; "
        "never ``target`` itself), so a pre-trained base can reach any stated target but has not practised the "
        "evaluated one. None: every example's target is ``target``.")
    targets: tuple[int, int] | None = Field(
        None, description="The task's own targets: every SFT example, RL prompt and evaluation hand gets a target "
        "in [low, high] (stated in the prompt; the ID and OOD rules alike) instead of the one ``target``. A "
        "3-card task at one target has a few dozen hand multisets, which SFT memorises; with a target range the "
        "pools hold (multiset, target) pairs by the thousand. The train/eval split stays by multiset. None: "
        "every hand's target is ``target``.")

    @field_validator("ranks", mode="before")
    @classmethod
    def _ranks(cls, v):
        if isinstance(v, str):
            v = [s.strip() for s in v.split(",")]
        v = tuple(str(r).strip().upper() for r in v)
        bad = [r for r in v if r not in RANKS]
        if bad:
            raise ValueError(f"unknown ranks {bad}; ranks are {list(RANKS)}")
        if len(set(v)) != len(v) or not v:
            raise ValueError("ranks must be non-empty and without repeats")
        return tuple(r for r in RANKS if r in v)

    @field_validator("rules", mode="before")
    @classmethod
    def _rules(cls, v):
        out = {}
        for name, mapping in (v or {}).items():
            if name in BUILTIN_RULES:
                raise ValueError(f"rule name {name!r} is built in; pick another name")
            mapping = {str(k).upper(): int(x) for k, x in dict(mapping).items()}
            bad = [r for r in mapping if r not in RANKS]
            if bad:
                raise ValueError(f"rule {name!r}: unknown ranks {bad}; ranks are {list(RANKS)}")
            out[name] = mapping
        return out

    @field_validator("face_values", "target_values", "targets")
    @classmethod
    def _ranges(cls, v, info):
        top = 99 if info.field_name == "face_values" else 10_000
        if v is not None and not (1 <= v[0] < v[1] <= top):
            raise ValueError(f"give [low, high] with 1 <= low < high <= {top}, not {list(v)}")
        return v

    def identity(self, exclude: set[str] = frozenset()) -> dict:
        """The fields that shape data, as JSON; fields added later are left out at their defaults, so
        the ids of trunks and runs made before they existed stay the same."""
        out = self.model_dump(mode="json", exclude=set(exclude))
        for name in _LATER_FIELDS:
            if name in out and out[name] == _LATER_FIELDS[name]:
                del out[name]
        return out

    @model_validator(mode="after")
    def _check(self):
        names = set(BUILTIN_RULES) | set(self.rules)
        for field_name, rule_names in (("train_rule", [self.train_rule]), ("eval_rules", list(self.eval_rules))):
            for r in rule_names:
                if r not in names:
                    raise ValueError(f"task.{field_name}: unknown rule {r!r}; known rules: {sorted(names)} "
                                     "(define new ones under task.rules)")
        if len(self.ranks) * 4 < self.num_cards:
            raise ValueError(f"task.ranks: {len(self.ranks)} ranks (4 of each) cannot deal {self.num_cards} cards")
        if self.target_values is not None and self.face_values is None:
            raise ValueError("task.target_values varies the target of varied-rule examples only: set task.face_values "
                             "too (a pre-training stage), or unset target_values")
        if self.targets is not None and self.face_values is not None:
            raise ValueError("task.targets is the ID/OOD task's target range; a varied-rule stage (face_values) "
                             "draws its targets from task.target_values: leave targets out of pretrain.task")
        if self.answer_format not in ANSWER_FORMATS:
            raise ValueError(f"task.answer_format must be one of {ANSWER_FORMATS}")
        return self

    def rule(self, name: str) -> Rule:
        if name in BUILTIN_RULES:
            return BUILTIN_RULES[name]
        if name in self.rules:
            return Rule(name, _rule_values(self.rules[name]))
        raise KeyError(f"unknown rule {name!r}; known: {sorted(set(BUILTIN_RULES) | set(self.rules))}")

    def distinguishing_ranks(self, rule: Rule) -> tuple[str, ...]:
        """Ranks (in this deck) whose value differs between ``rule`` and the training rule."""
        train = self.rule(self.train_rule)
        return tuple(r for r in self.ranks if rule.value(r) != train.value(r))


# --------------------------------------------------------------------------------------- scoring

REWARD_SCHEMES: dict[str, dict[str, float]] = {
    "binary": {"correct": 1.0, "wrong_value": 0.0, "wrong_cards": 0.0, "malformed": 0.0},
    "paper": {"correct": 5.0, "wrong_value": -1.0, "wrong_cards": -2.0, "malformed": -3.0},
}
VERDICTS: tuple[str, ...] = ("correct", "wrong_value", "wrong_cards", "malformed")


@dataclass(frozen=True)
class Score:
    """The verdict on one answer.

    ``verdict``: correct | wrong_value | wrong_cards | malformed. ``formula``: the text that was scored
    (None when no formula was found). ``value``: its exact value (None if malformed or division by 0).
    ``reward``: under the scheme asked for. ``detail``: a short human reason.
    """

    verdict: str
    formula: str | None
    value: Fraction | None
    reward: float
    detail: str = ""
    numbers: tuple[int, ...] = field(default=())

    @property
    def correct(self) -> bool:
        return self.verdict == "correct"

    def to_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "formula": self.formula,
            "value": None if self.value is None else str(self.value),
            "reward": self.reward,
            "detail": self.detail,
            "numbers": list(self.numbers),
        }


def resolve_rule(rule: Rule | str | Mapping[str, int]) -> Rule:
    if isinstance(rule, Rule):
        return rule
    if isinstance(rule, str):
        if rule not in BUILTIN_RULES:
            raise KeyError(f"unknown rule {rule!r}; built-in rules: {sorted(BUILTIN_RULES)}")
        return BUILTIN_RULES[rule]
    return Rule("custom", _rule_values(rule))


def parse_cards(cards: Sequence[str] | str) -> tuple[str, ...]:
    """``"K,5,3,2"`` or ``["K", "5", "3", "2"]`` -> ranks (case-insensitive; ``1`` means ``A``)."""
    if isinstance(cards, str):
        cards = [c for c in cards.replace(" ", ",").split(",") if c]
    out = []
    for c in cards:
        c = str(c).strip().upper()
        c = "A" if c == "1" else c
        if c not in RANKS:
            raise ValueError(f"unknown card {c!r}; cards are {', '.join(RANKS)}")
        out.append(c)
    return tuple(out)


def score(
    cards: Sequence[str] | str,
    answer: str,
    rule: Rule | str | Mapping[str, int] = "id",
    target: int = 24,
    reward: str = "binary",
) -> Score:
    """Score one answer to a hand: exact, bounded, never raises on any ``answer`` text.

    The multiset of numbers in the formula must equal the hand's values under ``rule``; the formula
    must evaluate exactly (fractions) to ``target``; division by zero is a wrong value.
    """
    scheme = REWARD_SCHEMES.get(reward)
    if scheme is None:
        raise ValueError(f"unknown reward scheme {reward!r}; choose one of {sorted(REWARD_SCHEMES)}")
    rule_ = resolve_rule(rule)
    values = sorted(rule_.value(c) for c in parse_cards(cards))
    formula = extract_formula(answer)
    if formula is None:
        return Score("malformed", None, None, scheme["malformed"], "no formula found")
    try:
        ev = evaluate_formula(formula)
    except FormulaError as exc:
        return Score("malformed", formula, None, scheme["malformed"], str(exc))
    if sorted(ev.literals) != values:
        return Score("wrong_cards", ev.formula, ev.value, scheme["wrong_cards"],
                     f"numbers used {sorted(ev.literals)} != card values {values}", ev.literals)
    if ev.value is None:
        return Score("wrong_value", ev.formula, None, scheme["wrong_value"], "division by zero", ev.literals)
    if ev.value != target:
        return Score("wrong_value", ev.formula, ev.value, scheme["wrong_value"], f"value {ev.value} != {target}",
                     ev.literals)
    return Score("correct", ev.formula, ev.value, scheme["correct"], "", ev.literals)


# --------------------------------------------------------------------------------------- dealing


def hand_key(hand: Sequence[str]) -> tuple[str, ...]:
    """The hand as a multiset (rank order), the unit of the train/eval split."""
    return tuple(sorted(hand, key=RANKS.index))


def in_eval_pool(hand: Sequence[str], cfg: TaskConfig) -> bool:
    """Whether this hand's multiset is reserved for evaluation (seeded hash; same on every machine)."""
    digest = hashlib.sha256(f"{cfg.split_seed}:{','.join(hand_key(hand))}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < cfg.eval_fraction


def _rng(purpose: str, rule: str, seed: int) -> random.Random:
    return random.Random(f"raysweep:{purpose}:{rule}:{seed}")  # str seeds hash with sha512: portable


def deal(
    cfg: TaskConfig, rule_name: str, n: int, seed: int, purpose: Purpose, unique: bool | None = None
) -> list[tuple[str, ...]]:
    """Deal ``n`` solvable hands (ordered, as dealt) for ``purpose`` under ``rule_name``, at ``task.target``
    (with ``task.targets`` each hand has its own target: use :func:`deal_targets`).

    ``sft``/``rl`` hands come from the training pool, ``eval`` hands from the evaluation pool. Hands for
    a rule other than the training rule hold at least one distinguishing card (for ``ood``: a face card).
    Eval hands are unique (as dealt) by default; the same arguments give the same hands everywhere.
    """
    if cfg.targets is not None:
        raise ValueError("task.targets is set: every hand has its own target; deal (hand, target) pairs with "
                         "deal_targets")
    return [hand for hand, _ in deal_targets(cfg, rule_name, n, seed, purpose, unique)]


def deal_targets(
    cfg: TaskConfig, rule_name: str, n: int, seed: int, purpose: Purpose, unique: bool | None = None
) -> list[tuple[tuple[str, ...], int]]:
    """``n`` solvable (hand, target) pairs: :func:`deal`'s hands, each with ``task.target`` or, with
    ``task.targets``, a target of its own drawn after the hand (uniqueness is then of the pair)."""
    rule = cfg.rule(rule_name)
    want_eval = purpose == "eval"
    unique = want_eval if unique is None else unique
    need = set(cfg.distinguishing_ranks(rule)) if rule_name != cfg.train_rule else set()
    if rule_name != cfg.train_rule and not need:
        raise ValueError(f"rule {rule_name!r} gives every rank in task.ranks the same value as the training "
                         f"rule {cfg.train_rule!r}; there is no OOD hand to deal")
    deck = [r for r in cfg.ranks for _ in range(4)]
    stream = rule_name if cfg.targets is None else f"{rule_name}:targets{cfg.targets[0]}-{cfg.targets[1]}"
    rng = _rng(purpose, stream, seed)
    out: list[tuple[tuple[str, ...], int]] = []
    seen: set = set()
    max_stall = 20_000  # consecutive rejected draws before the pool counts as exhausted
    stall = 0
    while len(out) < n:
        stall += 1
        if stall > max_stall:
            raise ValueError(
                f"could only deal {len(out)} of {n} {'unique ' if unique else ''}{purpose} hands for rule "
                f"{rule_name!r}: the pool is too small. Lower n, raise task.eval_fraction (eval) or widen "
                "task.ranks / task.num_cards" + (" / task.targets." if cfg.targets else "."))
        hand = tuple(rng.sample(deck, cfg.num_cards))
        target = cfg.target if cfg.targets is None else rng.randint(*cfg.targets)
        if in_eval_pool(hand, cfg) != want_eval:
            continue
        if need and not need.intersection(hand):
            continue
        key = hand if cfg.targets is None else (hand, target)
        if unique and key in seen:
            continue
        if not is_solvable([rule.value(c) for c in hand], target):
            continue
        seen.add(key)
        out.append((hand, target))
        stall = 0
    return out


def deal_varied(cfg: TaskConfig, n: int, seed: int, purpose: Purpose) -> list[tuple[tuple[str, ...], Rule, int]]:
    """``n`` solvable (hand, rule, target) triples whose face values vary (``task.face_values``): a fresh rule
    per hand, never equal (on the dealt ranks) to an evaluated rule, from the ``purpose`` pool (training or
    evaluation); the target is ``task.target``, or with ``task.target_values`` a fresh one per hand, never
    ``task.target``."""
    if cfg.face_values is None:
        raise ValueError("task.face_values is not set: there is no varied rule to deal")
    lo, hi = cfg.face_values
    evaluated = [cfg.rule(r) for r in cfg.eval_rules]
    stream = f"varied{lo}-{hi}" + (f"-targets{cfg.target_values[0]}-{cfg.target_values[1]}" if cfg.target_values else "")
    rng = _rng(purpose, stream, seed)
    deck = [r for r in cfg.ranks for _ in range(4)]
    faces = [r for r in FACE_RANKS if r in cfg.ranks]
    out: list[tuple[tuple[str, ...], Rule, int]] = []
    stall = 0
    while len(out) < n:
        stall += 1
        if stall > 20_000:
            raise ValueError(f"could only deal {len(out)} of {n} varied-rule hands; widen task.face_values, "
                             "task.target_values or task.ranks")
        if cfg.face_tied and rng.random() < cfg.face_tied:
            face = dict.fromkeys(faces, rng.randint(lo, hi))
        else:
            face = {r: rng.randint(lo, hi) for r in faces}
        if any(all(e.value(r) == v for r, v in face.items()) for e in evaluated):
            continue
        target = cfg.target
        if cfg.target_values is not None:
            target = rng.randint(*cfg.target_values)
            if target == cfg.target:
                continue
        rule = Rule("varied", _rule_values(face))
        hand = tuple(rng.sample(deck, cfg.num_cards))
        if in_eval_pool(hand, cfg) != (purpose == "eval"):
            continue
        if not is_solvable([rule.value(c) for c in hand], target):
            continue
        out.append((hand, rule, target))
        stall = 0
    return out


# --------------------------------------------------------------------------------------- prompts


def prompt_text(hand: Sequence[str], rule: Rule, cfg: TaskConfig, target: int | None = None) -> str:
    """The user message for one hand under one rule: the paper's wording, as text instead of an image.

    The hand comes last (``[Input]`` after ``[Output]``), so every prompt of a rule shares one long
    prefix; evaluation computes that prefix's KV cache once (see ``evaluate.generate``). ``short`` keeps
    the rule wording and the order (rule first, cards last) and drops the rest; answers still follow
    ``task.answer_format``, which SFT teaches. ``target`` (default ``task.target``) is the hand's own.
    """
    target = cfg.target if target is None else target
    rule_text = rule.text()
    cards = ", ".join(f"'{c}'" for c in hand)
    if cfg.prompt_style == "short":
        return f"Note that {rule_text}. Use each card once to make {target}.\nCards: [{cards}]"
    return (
        "[Task Description]\n"
        f"You are an expert {target} points card game player. You are given {len(hand)} cards. "
        f"Note that {rule_text}, and each card must be used once. Your goal is to output a formula that "
        f"evaluates to {target} using numbers from the cards and operators such as '+', '-', '*', '/', "
        "'(', ')', and '='.\n\n"
        "[Output]\n" + format_instructions(len(hand), target, rule_text, cfg.answer_format) + "\n\n"
        f"[Input]\nCards: [{cards}]"
    )


def prompt_messages(hand: Sequence[str], rule: Rule, cfg: TaskConfig,
                    target: int | None = None) -> list[dict[str, str]]:
    """The chat messages for one hand (render them with the model's chat template)."""
    return [{"role": "user", "content": prompt_text(hand, rule, cfg, target)}]
