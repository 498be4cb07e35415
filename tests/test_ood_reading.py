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
