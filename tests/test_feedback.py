"""The verifier's feedback on a failed attempt (the paper's messages), and `raysweep task feedback`."""

import json
import subprocess
import sys

import pytest

from raysweep.tasks.feedback import MESSAGES, check_messages, feedback
from raysweep.tasks.generalpoints import score


def _fb(cards, values, answer, rule="id", target=24, **kw):
    return feedback(score(cards, answer, rule, target, train_rule="id"), values, target, **kw)


def test_each_failure_gets_the_papers_message():
    assert _fb("K,5,3,2", [10, 5, 3, 2], "(2+10)*(5-3)") is None  # correct: the episode ends
    assert _fb("K,5,3,2", [10, 5, 3, 2], "(10-5+3)*2") == \
        "You failed this trial because your formula uses the right numbers but equals 16, not 24"
    assert _fb("K,5,3,2", [10, 5, 3, 2], "12*2") == \
        "You failed this trial because you used invalid numbers: [12], you didn't use numbers: [3, 5, 10]"
    assert _fb("K,5,3,2", [10, 5, 3, 2], "10*2+2+2") == \
        "You failed this trial because you used numbers: [2] too many times, you didn't use numbers: [3, 5]"
    assert _fb("K,5,3,2", [10, 5, 3, 2], "I give up") == \
        "You failed this trial because your formula is illegal (no formula found)"
    assert _fb("K,5,3,2", [10, 5, 3, 2], "Formula: 10*-2") == \
        f"You failed this trial because your formula is illegal ({score('K,5,3,2', 'Formula: 10*-2').detail})"


def test_an_ood_hand_answered_with_the_id_values_names_both_sets():
    # J, 5, 3 under the OOD rule: 11, 5, 3; the model computed with J = 10
    text = _fb("J,5,3", [11, 5, 3], "10*3-5", rule="ood", target=25)
    assert text == "You failed this trial because you used invalid numbers: [10], you didn't use numbers: [11]"
    assert score("J,5,3", "10*3-5", "ood", 25, train_rule="id").verdict == "train_rule_values"


def test_division_by_zero_and_overrides():
    assert _fb("K,5,3,2", [10, 5, 3, 2], "10/(5-3-2)").endswith("equals undefined (a division by zero), not 24")
    text = _fb("K,5,3,2", [10, 5, 3, 2], "(10-5+3)*2", messages={"prefix": "Wrong: "})
    assert text.startswith("Wrong: your formula uses the right numbers")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['nope'\]"):
        check_messages({"nope": "x"})
    assert set(MESSAGES) >= {"prefix", "invalid_numbers", "overused_numbers", "unused_numbers", "malformed",
                             "wrong_value"}


def test_task_feedback_command():
    out = subprocess.run([sys.executable, "-m", "raysweep.cli", "task", "feedback", "--cards", "J,5,3", "--rule", "ood",
                          "--target", "25", "--answer", "Formula: 10*3-5", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["verdict"] == "train_rule_values" and "invalid numbers: [10]" in got["feedback"]
    assert got["values"] == [11, 5, 3]
