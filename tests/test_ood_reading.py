"""bench/ood_reading.py: the values answers write for the cards a rule changes, and verdicts by cards held."""

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("ood_reading", Path(__file__).parents[1] / "bench" / "ood_reading.py")
ood_reading = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ood_reading)


def test_reading_counts_written_values_and_verdicts_by_cards_held():
    assert ood_reading.numbers_line("Numbers: 1, 8, 13\nFormula: 1+8+13=22") == ["1", "8", "13"]
    assert ood_reading.numbers_line("Formula: 1+8") == []
    assert ood_reading.numbers_line("Numbers: A=1, 8=8, K=13\nFormula: 1+8+13=22") == ["1", "8", "13"]
    records = [
        {"cards": ["A", "8", "J"], "answers": ["Numbers: 1, 8, 13\nFormula: 1+8+13=22"], "verdicts": ["wrong_cards"]},
        {"cards": ["K", "2", "9"], "answers": ["Numbers: 13, 2, 9\nFormula: 13+2+9=24"], "verdicts": ["correct"]},
        {"cards": ["K", "J", "A"], "answers": ["Formula: oops"], "verdicts": ["malformed"]},
    ]
    written, verdicts = ood_reading.reading(records, ("J", "Q", "K"))
    assert written["J"] == {"13": 1} and written["K"] == {"13": 1} and not written["Q"]
    assert verdicts == {"J": {"wrong_cards": 1}, "K": {"correct": 1}, "JK": {"malformed": 1}}


def test_rule_reading_scores_each_face_card_against_the_stated_value():
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
    spec = importlib.util.spec_from_file_location("rule_reading", Path(__file__).parents[1] / "bench" / "rule_reading.py")
    rule_reading = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rule_reading)
    hs = rule_reading.hands(50)
    assert len(hs) == 50 and all(len(h) == 3 and {"J", "Q", "K"} & set(h) for h in hs) and hs == rule_reading.hands(50)
    face = {"J": 11, "Q": 12, "K": 13}
    answers = ["Numbers: K=13, 9=9, Q=13\nFormula: x", "Numbers: 12, 12\nFormula: x", "no numbers"]
    got = rule_reading.reading_shares(answers, [("K", "9", "Q"), ("J", "Q"), ("K",)], face)
    assert got["K"] == {"n": 1, "right": 1.0, "most": [("13", 1)]}
    assert got["Q"]["n"] == 2 and got["Q"]["right"] == 0.5 and got["J"] == {"n": 1, "right": 0.0, "most": [("12", 1)]}
