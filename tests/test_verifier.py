"""The exact verifier: legal forms, exact arithmetic, bounds, hostile text."""

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raysweep.tasks.generalpoints import REWARD_SCHEMES, score
from raysweep.tasks.verifier import FormulaError, evaluate_formula


def test_exact_division_is_exact():
    s = score("8,3,8,3", "8/(3-8/3)", "id")
    assert s.verdict == "correct" and s.value == Fraction(24)
    # floats would give 23.999999999999996
    assert evaluate_formula("8/(3-8/3)").value == 24


def test_division_by_zero_is_wrong_value():
    s = score("8,3,8,3", "8/(3-3)+8", "id")
    assert s.verdict == "wrong_value" and s.value is None and "zero" in s.detail
    assert score("8,3,8,3", "8/(3-3)+8", "id", reward="paper").reward == -1


@pytest.mark.parametrize("answer,verdict", [
    ("(10-5+3)*2", "wrong_value"),        # right cards, value 16
    ("(2+10)*(5-3)", "correct"),
    ("(2+10)*(5-3)=24", "correct"),       # "= target" tail
    ("24 = (2+10)*(5-3)", "correct"),     # target first
    ("(2+10)*(5-3)=25", "correct"),       # the claimed number is ignored; the value counts
    ("(2+10)*(5-3)+0", "wrong_cards"),     # extra number
    ("(2+10)*5", "wrong_cards"),           # unused card
    ("(2+10)*(5-3)*(3-3)+24", "wrong_cards"),
    ("12*(5-3)", "wrong_cards"),           # merged cards
    ("(2+10)*(5-3)/1", "wrong_cards"),
    ("2^10", "malformed"),
    ("", "malformed"),
    ("no idea", "malformed"),
])
def test_verdicts_table(answer, verdict):
    assert score(["K", "5", "3", "2"], answer, "id").verdict == verdict


def test_each_rule_uses_its_face_values():
    # K,Q,J,A under ID: 10,10,10,1 ; under OOD: 13,12,11,1
    assert score("K,Q,J,A", "(10+10)+(10/(1*10))*0+4", "id").verdict == "wrong_cards"
    assert score("K,Q,J,A", "10+10+10*1", "id").verdict == "wrong_value"
    ood = "13+12-11*1"  # = 14
    assert score("K,Q,J,A", ood, "ood").verdict == "wrong_value"
    assert score("K,Q,J,A", ood, "id").verdict == "wrong_cards"
    assert score("K,Q,J,A", "(13-11)*12*1", "ood").verdict == "correct"
    assert score("K,Q,J,A", "(13-11)*12*1", "id").verdict == "wrong_cards"


def test_custom_rule_mapping():
    rule = {"J": 1, "Q": 2, "K": 3}
    assert score("K,Q,J,4", "(3+2+1)*4", rule).verdict == "correct"


@pytest.mark.parametrize("answer", [
    "__import__('os').system('x')",
    "().__class__.__bases__[0].__subclasses__()",
    "9**9**9",
    "9**9**9**9",
    "10**1000000",
    "lambda: 1",
    "[x for x in range(10**9)]",
    "open('/etc/passwd').read()",
    "1 if True else 2",
    "-24",
    "+(3*8)",
    "3*8.0",
    "3//8",
    "3 % 8",
    "0x18",
    "1_000",
    "08*3",
    "(" * 5000 + "1" + ")" * 5000,
    "1+" * 5000 + "1",
    "9" * 10_000,
    "x" * 10_000,
    "Formula: " + "(" * 200 + "3*8" + ")" * 200,
])
def test_hostile_text_is_malformed_never_raises(answer):
    s = score("3,8,A,A", answer, "id")
    assert s.verdict in ("malformed", "wrong_cards")
    if s.verdict == "wrong_cards":  # a legal formula over the wrong numbers (e.g. a 10 kB literal never is)
        assert s.value is not None


def test_ten_kilobyte_answer_is_malformed():
    assert score("3,8,A,A", "3*8*1*1" + " " * 10_000, "id").verdict == "malformed"


def test_bounds_raise_formula_error():
    for text in ["1+" * 40 + "1", "(" * 30 + "1" + ")" * 30, "1234567*1", ")(", "3*(8"]:
        with pytest.raises(FormulaError):
            evaluate_formula(text)


@pytest.mark.parametrize("answer", [
    '{"cards": ["K", "5", "3", "2"], "number": [10, 5, 3, 2], "formula": "(2+10)*(5-3)=24"}',
    "{'cards': ['K', '5', '3', '2'], 'number': [10, 5, 3, 2], 'formula': '(2+10)*(5-3)=24'}",
    "Numbers: 10, 5, 3, 2\nFormula: (2+10)*(5-3)=24",
    "numbers: 10,5,3,2\nformula:(2 + 10) * (5 - 3) = 24.",
    "Let me think.\n(2+10)*(5-3)=24",
    "(2 + 10) × (5 − 3) = 24",
    "[2+10] x (5-3)",
    "**Formula:** `(2+10)*(5-3) = 24`",
])
def test_tolerant_parsing(answer):
    assert score("K,5,3,2", answer, "id").verdict == "correct", answer


def test_unicode_division():
    assert score("8,3,8,3", "8 ÷ (3 − 8 ÷ 3) = 24", "id").verdict == "correct"


def test_reward_schemes():
    cards = "K,5,3,2"
    cases = {"correct": "(2+10)*(5-3)", "wrong_value": "(10-5+3)*2", "wrong_cards": "12*2", "malformed": "?"}
    for verdict, answer in cases.items():
        for scheme, table in REWARD_SCHEMES.items():
            s = score(cards, answer, "id", reward=scheme)
            assert s.verdict == verdict and s.reward == table[verdict]
    assert REWARD_SCHEMES["paper"] == {"correct": 5, "wrong_value": -1, "wrong_cards": -2, "train_rule_values": -2,
                                       "malformed": -3}


def test_wrong_numbers_that_are_the_training_rules_values_are_told_apart():
    # OOD hand J, 5, 3: the stated values are 11, 5, 3; an answer computing with J = 10 ignored the rule
    s = score("J,5,3", "(10-5)*3+9", "ood", target=24, train_rule="id")
    assert s.verdict == "wrong_cards"  # 9 is no card: other wrong numbers
    s = score("J,5,3", "10*3-5", "ood", target=25, train_rule="id", reward="paper")
    assert s.verdict == "train_rule_values" and s.reward == -2 and "training rule" in s.detail
    assert score("J,5,3", "10*3-5", "ood", target=25).verdict == "wrong_cards"  # without train_rule: as before
    # under the training rule itself, the training values are the stated ones: correct, never train_rule_values
    assert score("J,5,3", "10*3-5", "id", target=25, train_rule="id").verdict == "correct"
    assert score("2,5,3", "2*5+3", "ood", target=13, train_rule="id").verdict == "correct"


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=400))
def test_never_raises_on_arbitrary_text(text):
    s = score("K,5,3,2", text, "ood")
    assert s.verdict in ("correct", "wrong_value", "wrong_cards", "malformed")


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789+-*/()= x÷−.[]{}Formula:\n\"'", max_size=120))
def test_never_raises_on_formula_like_text(text):
    s = score("K,5,3,2", text, "id")
    assert s.verdict in ("correct", "wrong_value", "wrong_cards", "malformed")


@pytest.mark.parametrize("answer,verdict", [
    (".2*12", "malformed"),                    # a float, not "2*12" (the leading "." was stripped as punctuation)
    ("Formula: .2*12=24", "malformed"),
    ('{"formula": ".2*12=24"}', "malformed"),
    ("**Formula:** `.2*12`", "malformed"),
    ("24 = .2*12", "malformed"),
    ("Formula: 2*12.", "correct"),             # a trailing "." ends the sentence
    ("$2*12$", "correct"),
])
def test_a_leading_decimal_point_is_a_float(answer, verdict):
    assert score("2,Q", answer, "ood").verdict == verdict
