"""Multi-attempt episodes: conversations with the verifier's feedback, only unsolved episodes go on,
accuracy within k attempts (clustered by problem)."""

import pytest

from raysweep.attempts import accuracy_at_attempts, conversation, run_episodes, solved_at
from raysweep.config import ConfigError, load_config
from raysweep.tasks.generalpoints import TaskConfig


def test_conversation_solved_at_and_accuracy_within_k():
    conv = conversation([{"role": "user", "content": "Cards: [J, 5, 3]"}], ["Formula: 10*3-5"], ["You failed ..."])
    assert [m["role"] for m in conv] == ["user", "assistant", "user"] and conv[1]["content"] == "Formula: 10*3-5"
    assert solved_at(["wrong_cards", "correct"]) == 2 and solved_at(["malformed"]) is None
    acc = accuracy_at_attempts(["a", "b", "c", "d"], [[1], [2], [None], [3]], 3)
    assert [a["accuracy"] for a in acc] == [0.25, 0.5, 0.75] and all(a["n"] == 4 for a in acc)


def test_only_unsolved_episodes_go_on_with_the_feedback_on_their_last_answer():
    task = TaskConfig(num_cards=3, attempts=3)
    rule, train = task.rule("ood"), task.rule("id")
    hands = [(("J", "5", "3"), 26), (("2", "5", "3"), 13)]
    prompts = [[{"role": "user", "content": f"Cards: {list(h)}"}] for h, _ in hands]
    first = [["Formula: 10*3-5"], ["Formula: 2*5+3"]]  # the first ignores the OOD rule, the second is right
    seen = []

    def generate(convs, attempt):
        seen.append((attempt, convs))
        return ["Formula: 11+5*3"] * len(convs), 7 * len(convs)  # 26 with the stated values: solved

    episodes, tokens = run_episodes(generate, prompts, first, hands, rule, task, train)
    assert [len(e[0]) for e in episodes] == [2, 1]  # the first solved at attempt 2; the second was done at 1
    assert len(seen) == 1 and seen[0][0] == 2 and len(seen[0][1]) == 1 and tokens == 7
    feedback_turn = seen[0][1][0][-1]["content"]
    assert feedback_turn == "You failed this trial because you used invalid numbers: [10], you didn't use numbers: [11]"


def test_bad_attempts_and_rl_refusal():
    with pytest.raises(ConfigError, match="task.attempts"):
        load_config(None, ["task.attempts=11"])
    with pytest.raises(ConfigError, match="feedback messages: unknown key"):
        load_config(None, ["task.feedback={nope: x}"])
    from raysweep.train.rl import plan_job

    # RL plans episodes now; an episode budget that cannot hold every attempt is refused before any work
    with pytest.raises(ConfigError, match="rl.max_completion_length=50: an episode of task.attempts=5"):
        plan_job(load_config(None, ["task.attempts=5", "rl.checkpoint=tiny", "model.name=tiny",
                                    "rl.max_completion_length=50"]))
    # the protocol is part of the task's identity (trunks and runs), the default leaves old ids alone
    assert "attempts" not in TaskConfig().identity() and TaskConfig(attempts=5).identity()["attempts"] == 5
