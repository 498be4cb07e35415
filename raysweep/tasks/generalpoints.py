"""GeneralPoints: cards, rules, dealing, prompts and scoring.

A hand of ``num_cards`` cards is dealt from one shuffled deck (four of each rank, ranks limited to
``ranks``); the answer is a formula that uses every card's value exactly once and equals ``target``.
A *rule* maps ranks to values and is data: ``id`` (J, Q, K count 10) and ``ood`` (J, Q, K count 11, 12,
13) are built in, and a task config may define others. Hands for a rule other than the training rule
contain at least one card whose value the two rules disagree on (for ``ood``: a face card), so they
test the new rule and not memory.

The unit of the train/eval split is the *problem*: the multiset of card values under a rule, and the
target. Every training-rule problem falls, by a seeded hash, in the evaluation pool (fraction
``eval_fraction``) or the training pool (with ``rl_fraction``, a part of the held-out share goes to RL prompts
instead of evaluation: a three-way split, and no SFT or pre-training example computes with an RL problem). A hand
of any rule is an evaluation hand when its training-rule problem is in the evaluation pool: (J, 4, 2) in training
and (K, 4, 2) in evaluation (the same ID problem 2, 4, 10) cannot happen, and an OOD hand is never an ID-trained
problem in disguise.
A training example (the training rule, a configured rule or a varied pre-training rule) is refused when the
values and target it makes the model compute with are any evaluated rule's evaluation problem. Evaluation
sets hold distinct problems under their own rule.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Callable, ClassVar, Literal, Mapping, Sequence, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from raysweep.tasks.answers import ANSWER_FORMATS, AnswerFormat, extract_formula, format_instructions
from raysweep.tasks.solver import is_solvable
from raysweep.tasks.verifier import FormulaError, evaluate_formula

T = TypeVar("T")
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


STATED = "stated:"
"""Prefix of a rule stated in one prompt only (an RL prompt of ``rl.rules``), named by its face values:
``stated:J=12,Q=3,K=7``. Any task config resolves such a name (:meth:`TaskConfig.rule`), so a row's ``rule`` column
carries its rule to the scorer, the feedback and the problem key."""


def stated_rule(face: Mapping[str, int]) -> Rule:
    """The rule giving the face cards ``face``'s values (other ranks their number), named :data:`STATED` + values."""
    return Rule(STATED + ",".join(f"{r}={face[r]}" for r in FACE_RANKS if r in face), _rule_values(face))


def parse_stated(name: str) -> Rule:
    """The rule a :func:`stated_rule` name names; a malformed name is refused."""
    try:
        face = {k.strip().upper(): int(v) for k, v in (part.split("=") for part in name[len(STATED):].split(","))}
    except ValueError:
        raise KeyError(f"malformed stated rule {name!r}; expected e.g. 'stated:J=12,Q=3,K=7'") from None
    if not face or set(face) - set(FACE_RANKS):
        raise KeyError(f"malformed stated rule {name!r}: it must give J, Q and/or K a value, e.g. 'stated:J=12,Q=3,K=7'")
    return stated_rule(face)


BUILTIN_RULES: dict[str, Rule] = {
    "id": Rule("id", _rule_values({"J": 10, "Q": 10, "K": 10})),
    "ood": Rule("ood", _rule_values({"J": 11, "Q": 12, "K": 13})),
}

Purpose = Literal["sft", "rl", "eval"]
_LATER_FIELDS = {"prompt_style": "paper", "face_values": None, "face_tied": 0.0, "target_values": None,
                 "targets": None, "attempts": 1, "feedback": {}, "rl_fraction": 0.0}
"""TaskConfig fields added after trunks were first made, with the default that leaves data unchanged."""


class TaskConfig(BaseModel):
    """The GeneralPoints task: hand size, target, ranks, rules, answer format and data splits."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ClassVar[str] = "generalpoints"  # task.kind (the default; not a field, so ids and dumps stay as they were)

    num_cards: int = Field(4, ge=2, le=6, description="Cards per hand (2 to 6).")
    target: int = Field(24, ge=1, le=10_000, description="The value every formula must reach.")
    ranks: tuple[str, ...] = Field(RANKS, description="Ranks the deck holds (a rank range), e.g. [A, '2', ..., K].")
    train_rule: str = Field("id", description="Rule used for SFT data, RL prompts and the ID evaluation.")
    eval_rules: tuple[str, ...] = Field(("id", "ood"), description="Rules evaluated (ID first, then OOD rules).")
    rules: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="Extra rules by name: rank -> value (ranks not named count as A=1, 2..10, J=11, Q=12, K=13).",
    )
    answer_format: AnswerFormat = Field("compact", description="'json' (the paper's), 'compact' (two short lines: the "
                                           "numbers, then the formula) or 'paired' (compact, each number written after its card, "
                                           "'Numbers: K=13, 9=9': the paper's JSON cards-then-numbers in two short lines).")
    eval_fraction: float = Field(0.25, gt=0.0, lt=1.0, description="Share of hand multisets kept for evaluation only.")
    split_seed: int = Field(0, description="Seed of the train/eval split of hand multisets.")
    rl_fraction: float = Field(
        0.0, ge=0.0, lt=1.0, description="Share of training-rule problems given to RL out of the held-out share "
        "(eval_fraction): a three-way split. No SFT or pre-training example computes with an RL problem (nor with an "
        "evaluation problem), RL prompts pose only RL problems, and evaluation keeps eval_fraction - rl_fraction; so "
        "RL practises problems the model was never shown an answer to, and a base pre-trained with rl_fraction 0 at "
        "the same eval_fraction never saw one either. 0: RL shares the training pool with SFT.")
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
    attempts: int = Field(
        1, ge=1, le=10, description="Attempts per hand (the paper: 5): after a wrong attempt the verifier's feedback "
        "(raysweep.tasks.feedback) is appended as a user turn and the model answers again; a correct answer ends "
        "the episode. Evaluation reports accuracy within every k = 1..attempts; RL samples whole episodes and trains on "
        "the model's turns (raysweep.train.episodes; GRPO).")
    feedback: dict[str, str] = Field(
        default_factory=dict, description="Overrides of the feedback messages by key (see raysweep.tasks.feedback."
        "MESSAGES: prefix, invalid_numbers, overused_numbers, unused_numbers, malformed, wrong_value, join).")
    targets: tuple[int, int] | None = Field(
        None, description="The task's own targets: every SFT example, RL prompt and evaluation hand gets a target "
        "in [low, high] (stated in the prompt; the ID and OOD rules alike) instead of the one ``target``. A "
        "3-card task at one target has a few dozen hand multisets, which SFT memorises; with a target range the "
        "pools hold (multiset, target) pairs by the thousand. With face_values (a pre-training stage) the "
        "evaluation's targets only (varied examples draw theirs from target_values). None: every hand's target "
        "is ``target``.")

    @field_validator("feedback")
    @classmethod
    def _feedback(cls, v):
        from raysweep.tasks.feedback import check_messages

        check_messages(v)
        return v

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
        """The fields that shape data, as JSON, and the split's unit (:data:`SPLIT`); fields added later are
        left out at their defaults, so the ids of trunks and runs made before they existed stay the same."""
        out = self.model_dump(mode="json", exclude=set(exclude))
        for name in _LATER_FIELDS:
            if name in out and out[name] == _LATER_FIELDS[name]:
                del out[name]
        out["split"] = SPLIT
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
        if self.rl_fraction >= self.eval_fraction:
            raise ValueError(f"task.rl_fraction ({self.rl_fraction}) is taken out of task.eval_fraction "
                             f"({self.eval_fraction}) and must leave evaluation problems: lower rl_fraction or raise "
                             "eval_fraction")
        if self.answer_format not in ANSWER_FORMATS:
            raise ValueError(f"task.answer_format must be one of {ANSWER_FORMATS}")
        return self

    def make(self):
        """This config's :class:`~raysweep.tasks.protocol.Task`."""
        from raysweep.tasks.gp_task import GeneralPointsTask

        return GeneralPointsTask(self)

    def rule(self, name: str) -> Rule:
        if name in BUILTIN_RULES:
            return BUILTIN_RULES[name]
        if name in self.rules:
            return Rule(name, _rule_values(self.rules[name]))
        if name.startswith(STATED):
            return parse_stated(name)
        raise KeyError(f"unknown rule {name!r}; known: {sorted(set(BUILTIN_RULES) | set(self.rules))}")

    def distinguishing_ranks(self, rule: Rule) -> tuple[str, ...]:
        """Ranks (in this deck) whose value differs between ``rule`` and the training rule."""
        train = self.rule(self.train_rule)
        return tuple(r for r in self.ranks if rule.value(r) != train.value(r))


# --------------------------------------------------------------------------------------- scoring

REWARD_SCHEMES: dict[str, dict[str, float]] = {
    "binary": {"correct": 1.0, "wrong_value": 0.0, "wrong_cards": 0.0, "train_rule_values": 0.0, "malformed": 0.0},
    "paper": {"correct": 5.0, "wrong_value": -1.0, "wrong_cards": -2.0, "train_rule_values": -2.0, "malformed": -3.0},
}
VERDICTS: tuple[str, ...] = ("correct", "wrong_value", "wrong_cards", "train_rule_values", "malformed")
"""``train_rule_values``: wrong numbers that are exactly the hand's values under the training rule, on a hand
scored under another rule (the model ignored the stated rule: the forgetting the paper is about); the
reward of wrong numbers. Other wrong numbers are ``wrong_cards``."""


@dataclass(frozen=True)
class Score:
    """The verdict on one answer.

    ``verdict``: one of :data:`VERDICTS`. ``formula``: the text that was scored
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
    train_rule: Rule | str | Mapping[str, int] | None = None,
) -> Score:
    """Score one answer to a hand: exact, bounded, never raises on any ``answer`` text.

    The multiset of numbers in the formula must equal the hand's values under ``rule``; the formula
    must evaluate exactly (fractions) to ``target``; division by zero is a wrong value. With
    ``train_rule`` (where ``rule`` gives the hand other values), wrong numbers that are exactly the hand's
    values under the training rule are ``train_rule_values``.
    """
    scheme = REWARD_SCHEMES.get(reward)
    if scheme is None:
        raise ValueError(f"unknown reward scheme {reward!r}; choose one of {sorted(REWARD_SCHEMES)}")
    rule_ = resolve_rule(rule)
    hand = parse_cards(cards)
    values = sorted(rule_.value(c) for c in hand)
    formula = extract_formula(answer)
    if formula is None:
        return Score("malformed", None, None, scheme["malformed"], "no formula found")
    try:
        ev = evaluate_formula(formula)
    except FormulaError as exc:
        return Score("malformed", formula, None, scheme["malformed"], str(exc))
    if sorted(ev.literals) != values:
        train = None if train_rule is None else sorted(resolve_rule(train_rule).value(c) for c in hand)
        if train is not None and train != values and sorted(ev.literals) == train:
            return Score("train_rule_values", ev.formula, ev.value, scheme["train_rule_values"],
                         f"numbers used {train} are the training rule's values, not the stated {values}", ev.literals)
        return Score("wrong_cards", ev.formula, ev.value, scheme["wrong_cards"],
                     f"numbers used {sorted(ev.literals)} != card values {values}", ev.literals)
    if ev.value is None:
        return Score("wrong_value", ev.formula, None, scheme["wrong_value"], "division by zero", ev.literals)
    if ev.value != target:
        return Score("wrong_value", ev.formula, ev.value, scheme["wrong_value"], f"value {ev.value} != {target}",
                     ev.literals)
    return Score("correct", ev.formula, ev.value, scheme["correct"], "", ev.literals)


# --------------------------------------------------------------------------------------- dealing


SPLIT = "problem"
"""The unit of the train/eval split; part of every task identity, so a trunk made on the earlier split (by rank
multiset, which leaked ID problems: (J, 4, 2) trained, (K, 4, 2) evaluated) is never mistaken for a new one."""

Problem = tuple[tuple[int, ...], int]
"""(the sorted card values under a rule, the target): what a model must compute with, and where to."""


from raysweep.tasks.protocol import PoolTooSmall  # noqa: E402 - an evaluation pool holds fewer problems than asked


def hand_key(hand: Sequence[str]) -> tuple[str, ...]:
    """The hand as a rank multiset (rank order)."""
    return tuple(sorted(hand, key=RANKS.index))


def problem_of(hand: Sequence[str], rule: Rule, target: int) -> Problem:
    """The problem a hand poses under ``rule`` at ``target``."""
    return tuple(sorted(rule.value(c) for c in hand)), int(target)


def problem_label(problem: Problem) -> str:
    """A problem as text, e.g. ``2,4,10=24`` (the key that evaluation records, clusters and pairs by)."""
    return f"{','.join(str(v) for v in problem[0])}={problem[1]}"


def _split_point(problem: Problem, cfg: TaskConfig) -> float:
    # a seeded hash of the problem in [0, 1): the same on every machine
    digest = hashlib.sha256(f"{cfg.split_seed}:{SPLIT}:{problem_label(problem)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def problem_in_eval(problem: Problem, cfg: TaskConfig) -> bool:
    """Whether this problem is reserved for evaluation (seeded hash of the problem; same on every machine): the
    held-out share ``eval_fraction`` less the part given to RL (``rl_fraction``)."""
    return _split_point(problem, cfg) < cfg.eval_fraction - cfg.rl_fraction


def problem_in_rl_pool(problem: Problem, cfg: TaskConfig) -> bool:
    """Whether this problem is kept for RL only (``task.rl_fraction``): a training-rule problem (its values are
    values the training rule gives) whose hash falls in the last ``rl_fraction`` of the held-out share. Never an
    evaluation problem, never a supervised one."""
    if not cfg.rl_fraction:
        return False
    if not set(problem[0]) <= _train_values(cfg):
        return False
    return cfg.eval_fraction - cfg.rl_fraction <= _split_point(problem, cfg) < cfg.eval_fraction


def _train_values(cfg: TaskConfig) -> set[int]:
    train = cfg.rule(cfg.train_rule)
    return {train.value(r) for r in cfg.ranks}


def in_eval_pool(hand: Sequence[str], cfg: TaskConfig, target: int | None = None) -> bool:
    """Whether this hand's problem under the training rule (at ``target``, default ``task.target``) is an
    evaluation problem."""
    return problem_in_eval(problem_of(hand, cfg.rule(cfg.train_rule), cfg.target if target is None else target), cfg)


def is_eval_problem(problem: Problem, rule_name: str, cfg: TaskConfig) -> bool:
    """Whether ``problem`` is an evaluation problem of ``rule_name``: some hand of the deck poses it under that
    rule, holds a distinguishing card (rules other than the training rule) and has its training-rule problem
    in the evaluation pool."""
    return _is_eval_problem(problem, rule_name, cfg.model_dump_json())


@lru_cache(maxsize=200_000)
def _is_eval_problem(problem: Problem, rule_name: str, cfg_json: str) -> bool:
    cfg = TaskConfig.model_validate_json(cfg_json)
    if rule_name == cfg.train_rule:
        return problem_in_eval(problem, cfg)
    rule, train, need = cfg.rule(rule_name), cfg.rule(cfg.train_rule), set(cfg.distinguishing_ranks(cfg.rule(rule_name)))
    values, target = problem
    choices = [[r for r in cfg.ranks if rule.value(r) == v] for v in values]
    for hand in itertools.product(*choices):
        if need.intersection(hand) and all(hand.count(r) <= 4 for r in set(hand)):
            if problem_in_eval(problem_of(hand, train, target), cfg):
                return True
    return False


def admitted(hand: Sequence[str], rule: Rule, target: int, cfg: TaskConfig, evaluation: bool,
             rl: bool = False) -> bool:
    """Whether a hand may be an evaluation hand (``evaluation``: its training-rule problem is an evaluation
    problem) or a training example under ``rule`` (a built-in, a configured or a varied rule): the problem it
    makes the model compute with is no evaluated rule's evaluation problem. With ``task.rl_fraction``, an RL prompt
    (``rl``) must pose a problem kept for RL, and any other training example must not."""
    if evaluation:
        return in_eval_pool(hand, cfg, target)
    p = problem_of(hand, rule, target)
    if any(is_eval_problem(p, r, cfg) for r in dict.fromkeys((cfg.train_rule, *cfg.eval_rules))):
        return False
    return not cfg.rl_fraction or problem_in_rl_pool(p, cfg) == rl


def _rng(purpose: str, rule: str, seed: int) -> random.Random:
    return random.Random(f"raysweep:{purpose}:{rule}:{seed}")  # str seeds hash with sha512: portable


def deal(
    cfg: TaskConfig, rule_name: str, n: int, seed: int, purpose: Purpose, unique: bool | None = None
) -> list[tuple[str, ...]]:
    """Deal ``n`` solvable hands (ordered, as dealt) for ``purpose`` under ``rule_name``, at ``task.target``
    (with ``task.targets`` each hand has its own target: use :func:`deal_targets`).

    ``sft``/``rl`` hands come from the training pool (with ``task.rl_fraction``, ``rl`` hands from the RL share of
    the held-out problems instead), ``eval`` hands from the evaluation pool (distinct
    problems, :func:`eval_problems`). Hands for a rule other than the training rule hold at least one
    distinguishing card (for ``ood``: a face card). The same arguments give the same hands everywhere.
    """
    if cfg.targets is not None:
        raise ValueError("task.targets is set: every hand has its own target; deal (hand, target) pairs with "
                         "deal_targets")
    return [hand for hand, _ in deal_targets(cfg, rule_name, n, seed, purpose, unique)]


def _distinguishing(cfg: TaskConfig, rule_name: str) -> set[str]:
    if rule_name == cfg.train_rule:
        return set()
    need = set(cfg.distinguishing_ranks(cfg.rule(rule_name)))
    if not need:
        raise ValueError(f"rule {rule_name!r} gives every rank in task.ranks the same value as the training "
                         f"rule {cfg.train_rule!r}; there is no OOD hand to deal")
    return need


def _targets(cfg: TaskConfig) -> range:
    return range(cfg.target, cfg.target + 1) if cfg.targets is None else range(cfg.targets[0], cfg.targets[1] + 1)


MAX_STALL = 20_000
"""Consecutive rejected draws after which a pool counts as exhausted (:func:`collect`)."""
POOL_KNOBS = "task.num_cards, task.targets, task.ranks, task.eval_fraction or task.rl_fraction"


def eval_problems(cfg: TaskConfig, rule_name: str, n: int | None, seed: int = 0) -> list[tuple[tuple[str, ...], int]]:
    """``n`` (hand, target) pairs posing ``n`` distinct evaluation problems under ``rule_name`` (``n=None``:
    the whole pool), seeded; raises :class:`PoolTooSmall` (naming the pool's size and the knobs that
    enlarge it) when the pool holds fewer.

    Every rank multiset the deck can deal, at every target, in a seeded random order; kept when admitted to
    the evaluation pool (:func:`admitted`), holding a distinguishing card (rules other than the training
    rule), solvable, and posing a problem not yet taken. Each kept hand is shuffled into a dealing order.
    Memoised per process (every checkpoint evaluation asks for the same sets).
    """
    return list(_eval_problems(cfg.model_dump_json(), rule_name, n, seed))


@lru_cache(maxsize=256)
def _eval_problems(cfg_json: str, rule_name: str, n: int | None, seed: int) -> tuple[tuple[tuple[str, ...], int], ...]:
    cfg = TaskConfig.model_validate_json(cfg_json)
    rule = cfg.rule(rule_name)
    need = _distinguishing(cfg, rule_name)
    multisets = [m for m in itertools.combinations_with_replacement(cfg.ranks, cfg.num_cards)
                 if all(m.count(r) <= 4 for r in set(m))]
    candidates = [(m, t) for m in multisets for t in _targets(cfg)]
    stream = rule_name if cfg.targets is None else f"{rule_name}:targets{cfg.targets[0]}-{cfg.targets[1]}"
    rng = _rng(f"eval-{SPLIT}", stream, seed)
    rng.shuffle(candidates)
    out: list[tuple[tuple[str, ...], int]] = []
    seen: set[Problem] = set()
    for hand, target in candidates:
        if n is not None and len(out) >= n:
            break
        if need and not need.intersection(hand):
            continue
        p = problem_of(hand, rule, target)
        if p in seen or not admitted(hand, rule, target, cfg, evaluation=True) or not is_solvable(p[0], target):
            continue
        seen.add(p)
        order = list(hand)
        rng.shuffle(order)
        out.append((tuple(order), target))
    if n is not None and len(out) < n:
        raise PoolTooSmall(
            f"the {rule_name!r} evaluation pool holds {len(out)} distinct problems, fewer than eval.n={n}: lower "
            f"eval.n to at most {len(out)}, or enlarge the pool with {POOL_KNOBS}")
    return tuple(out)


def check_eval_pools(cfg: TaskConfig, n: int) -> None:
    """Raise :class:`PoolTooSmall` unless every evaluated rule's pool holds ``n`` distinct problems (cheap when
    repeated: :func:`eval_problems` is memoised)."""
    for rule_name in cfg.eval_rules:
        eval_problems(cfg, rule_name, n, 0)


def deal_targets(
    cfg: TaskConfig, rule_name: str, n: int, seed: int, purpose: Purpose, unique: bool | None = None
) -> list[tuple[tuple[str, ...], int]]:
    """``n`` solvable (hand, target) pairs: :func:`deal`'s hands, each with ``task.target`` or, with
    ``task.targets``, a target of its own drawn after the hand. ``eval`` pairs are :func:`eval_problems`
    (distinct problems; ``unique`` is ignored); ``sft``/``rl`` pairs are dealt from a shuffled deck, from the
    training pool (with ``unique``, no (hand, target) pair twice)."""
    if purpose == "eval":
        return eval_problems(cfg, rule_name, n, seed)
    rule = cfg.rule(rule_name)
    need = _distinguishing(cfg, rule_name)
    deck = [r for r in cfg.ranks for _ in range(4)]
    stream = rule_name if cfg.targets is None else f"{rule_name}:targets{cfg.targets[0]}-{cfg.targets[1]}"
    rng = _rng(purpose, stream, seed)
    seen: set = set()

    def draw(_: int) -> tuple[tuple[str, ...], int] | None:
        hand = tuple(rng.sample(deck, cfg.num_cards))
        target = cfg.target if cfg.targets is None else rng.randint(*cfg.targets)
        if not admitted(hand, rule, target, cfg, evaluation=False, rl=purpose == "rl"):
            return None
        if need and not need.intersection(hand):
            return None
        key = hand if cfg.targets is None else (hand, target)
        if unique and key in seen:
            return None
        if not is_solvable([rule.value(c) for c in hand], target):
            return None
        seen.add(key)
        return hand, target

    return collect(n, draw, lambda k: f"could only deal {k} of {n} {'unique ' if unique else ''}{purpose} hands for "
                   f"rule {rule_name!r}: the training pool is too small. Lower n, or widen {POOL_KNOBS}")


def collect(n: int, draw: Callable[[int], T | None], exhausted: Callable[[int], str]) -> list[T]:
    """``n`` items from ``draw(k)`` (``k``: how many are kept so far; None: rejected, drawn again); a ValueError
    with ``exhausted(k)`` after :data:`MAX_STALL` rejections in a row (the pool counts as exhausted)."""
    out: list[T] = []
    stall = 0
    while len(out) < n:
        stall += 1
        if stall > MAX_STALL:
            raise ValueError(exhausted(len(out)))
        item = draw(len(out))
        if item is not None:
            out.append(item)
            stall = 0
    return out


def draw_face(rng: random.Random, faces: Sequence[str], lo: int, hi: int, tied: float,
              evaluated: Sequence[Rule]) -> dict[str, int] | None:
    """A fresh valuation of the face cards, each in [lo, hi] (a ``tied`` share of draws one value for all); None
    when it states one of the ``evaluated`` rules (the caller redraws)."""
    if tied and rng.random() < tied:
        face = dict.fromkeys(faces, rng.randint(lo, hi))
    else:
        face = {r: rng.randint(lo, hi) for r in faces}
    if any(all(e.value(r) == v for r, v in face.items()) for e in evaluated):
        return None
    return face


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
    def draw(_: int) -> tuple[tuple[str, ...], Rule, int] | None:
        face = draw_face(rng, faces, lo, hi, cfg.face_tied, evaluated)
        if face is None:
            return None
        target = cfg.target
        if cfg.target_values is not None:
            target = rng.randint(*cfg.target_values)
            if target == cfg.target:
                return None
        rule = Rule("varied", _rule_values(face))
        hand = tuple(rng.sample(deck, cfg.num_cards))
        if not admitted(hand, rule, target, cfg, evaluation=purpose == "eval", rl=purpose == "rl"):
            return None
        if not is_solvable([rule.value(c) for c in hand], target):
            return None
        return hand, rule, target

    return collect(n, draw, lambda k: f"could only deal {k} of {n} varied-rule hands; widen task.face_values, "
                   "task.target_values or task.ranks")


STATED_DEAL = 2
"""Version of :func:`deal_stated`'s dealing, in the id of every RL run with ``rl.rules`` (1: a rule agreeing with an
evaluated rule on the dealt cards was redrawn; 2: only one stating an evaluated rule is)."""
VARIED = "varied"
"""The entry of ``rl.rules`` that draws a fresh face-card rule per prompt (:func:`deal_stated`)."""


def deal_stated(cfg: TaskConfig, rules: Sequence[str], n: int, seed: int, face_values: tuple[int, int] = (1, 13),
                face_tied: float = 0.0) -> list[tuple[tuple[str, ...], Rule, int]]:
    """``n`` solvable (hand, rule, target) RL prompts whose stated rule must be read (``rl.rules``: a positive
    control). ``rules`` are dealt in turn: a task rule by name, or :data:`VARIED` (a fresh rule per prompt, J, Q and
    K each drawn from ``face_values``, a ``face_tied`` share of them tied to one value).

    The split stays by the training rule's problem: a hand is dealt as an RL hand of the training rule (the training
    pool, or with ``task.rl_fraction`` its RL share; :func:`admitted`), holds a card the stated rule values
    differently from the training rule (so the statement must be read), and under its stated rule poses no evaluated
    rule's evaluation problem. A ``varied`` draw that states an evaluated rule (the same value for every face card)
    is redrawn, as pre-training's are (:func:`deal_varied`); a draw that agrees with an evaluated rule on the dealt
    cards only is kept: redrawing those too would never let a lone K count 13 (or a lone J 11), and RL would learn
    that the OOD values are wrong."""
    if not rules:
        raise ValueError("rl.rules is empty: RL prompts use the training rule (deal_targets)")
    lo, hi = face_values
    train = cfg.rule(cfg.train_rule)
    checked = tuple(dict.fromkeys((cfg.train_rule, *cfg.eval_rules)))  # the training rule and the evaluated ones
    evaluated = [cfg.rule(r) for r in checked]
    named = {r: cfg.rule(r) for r in rules if r != VARIED}
    stream = f"stated:{'+'.join(rules)}:{lo}-{hi}:{face_tied}"
    if cfg.targets is not None:
        stream += f":targets{cfg.targets[0]}-{cfg.targets[1]}"
    rng = _rng("rl", stream, seed)
    deck = [r for r in cfg.ranks for _ in range(4)]
    faces = [r for r in FACE_RANKS if r in cfg.ranks]

    def draw(k: int) -> tuple[tuple[str, ...], Rule, int] | None:
        which = rules[k % len(rules)]  # dealt in turn
        if which == VARIED:
            face = draw_face(rng, faces, lo, hi, face_tied, evaluated)
            if face is None:
                return None
            rule = stated_rule(face)
        else:
            rule = named[which]
        hand = tuple(rng.sample(deck, cfg.num_cards))
        target = cfg.target if cfg.targets is None else rng.randint(*cfg.targets)
        if all(rule.value(c) == train.value(c) for c in hand):
            return None  # nothing to read: the hand counts as under the training rule
        if not admitted(hand, train, target, cfg, evaluation=False, rl=True):
            return None
        if any(is_eval_problem(problem_of(hand, rule, target), r, cfg) for r in checked):
            return None
        if not is_solvable([rule.value(c) for c in hand], target):
            return None
        return hand, rule, target

    return collect(n, draw, lambda k: f"could only deal {k} of {n} RL prompts under rl.rules={list(rules)}: widen "
                   f"rl.face_values, or the training pool ({POOL_KNOBS})")


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
