"""Multi-attempt RL episodes (rollout, masks, episode reward), two-attempt SFT examples, and their config checks."""

import random

import pytest

from raysweep.config import ConfigError, load_config
from raysweep.tasks.feedback import feedback, judge
from raysweep.tasks.generalpoints import TaskConfig, score
from raysweep.train.episodes import (EpisodeRollout, TurnTemplate, episode_budget, episode_return,
                                     feedback_tokens, longest_feedback, prompt_key)
from raysweep.train.rewards import VerifierReward


def test_episode_return_final_or_discounted():
    assert episode_return([0.0, 0.0, 1.0], "final", 0.9) == 1.0
    assert episode_return([0.0, 0.0, 1.0], "discounted", 0.9) == pytest.approx(0.81)
    assert episode_return([-1.0, 5.0], "discounted", 0.5) == pytest.approx(-1.0 + 2.5)
    assert episode_return([1.0], "discounted", 0.9) == 1.0  # solved at once: undiscounted
    with pytest.raises(ValueError, match="at least one attempt"):
        episode_return([], "final", 0.9)
    with pytest.raises(ValueError, match="unknown episode reward"):
        episode_return([1.0], "mean", 0.9)


def test_turn_template_is_read_off_the_chat_template(tiny_model):
    _, tok = tiny_model
    t = TurnTemplate.of(tok)
    # chatml: the model's turn ends with <|im_end|> (its eos token), then a user turn, then the assistant header
    assert t.closing == "<|im_end|>\n" and t.before == "<|im_start|>user\n"
    assert t.after == "<|im_end|>\n<|im_start|>assistant\n"
    assert t.text("no", ended_with_eos=True) == "\n<|im_start|>user\nno<|im_end|>\n<|im_start|>assistant\n"
    assert t.text("no", ended_with_eos=False).startswith("<|im_end|>\n<|im_start|>user\nno")
    # what the rollout appends is what the chat template renders for the whole conversation
    prompt = [{"role": "user", "content": "Cards: K, 2"}]
    whole = tok.apply_chat_template(prompt + [{"role": "assistant", "content": "Formula: 1"},
                                              {"role": "user", "content": "no"}], tokenize=False,
                                    add_generation_prompt=True)
    first = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True) + "Formula: 1<|im_end|>"
    assert whole == first + t.text("no", ended_with_eos=True)


class ScriptedPolicy:
    """Answers each generation call from a script (a test double for the sampling model; the rollout's own logic
    -- scoring, feedback, masks, budget -- is what is under test)."""

    device = "cpu"

    def __init__(self, tok, script):
        self.tok, self.script, self.inputs = tok, list(script), []

    def generate(self, input_ids, attention_mask, generation_config):
        import torch

        answers = self.script.pop(0)
        assert len(answers) == input_ids.shape[0]
        self.inputs.append([r[m.bool()].tolist() for r, m in zip(input_ids, attention_mask)])
        rows = [self.tok(a, add_special_tokens=False)["input_ids"] + [self.tok.eos_token_id] for a in answers]
        width = max(len(r) for r in rows)
        new = torch.tensor([r + [self.tok.pad_token_id] * (width - len(r)) for r in rows])
        return torch.cat([input_ids, new], dim=1)


def _rollout(tok, attempts, budget=2000, answer_tokens=60):
    from transformers import GenerationConfig

    task = TaskConfig(num_cards=3, attempts=attempts, prompt_style="short", targets=(12, 36))
    hands = [(["K", "5", "3"], "id", 18), (["K", "5", "3"], "id", 25)]
    from raysweep.tasks.generalpoints import prompt_messages

    prompts = [prompt_messages(tuple(c), task.rule(r), task, t) for c, r, t in hands]
    ro = EpisodeRollout(task, tok, {prompt_key(p): h for p, h in zip(prompts, hands)}, answer_tokens, budget)
    return task, prompts, ro, GenerationConfig(max_new_tokens=1)


def test_rollout_episodes_mask_feedback_and_stop_when_solved(tiny_model):
    _, tok = tiny_model
    task, prompts, ro, gen = _rollout(tok, attempts=3)
    # prompt 0: wrong numbers, then right; prompt 1: wrong value three times
    policy = ScriptedPolicy(tok, [["Formula: 12+5+3", "Formula: 10+5+3"],
                                  ["Formula: 10+5+3", "Formula: 10-5-3"],
                                  ["Formula: 10*5/3"]])
    out = ro.run(policy, gen, prompts)
    assert out["attempt_verdicts"][0] == ["wrong_cards", "correct"]
    assert out["attempt_verdicts"][1] == ["wrong_value", "wrong_value", "wrong_value"]
    assert out["episode_end"] == ["solved", "attempts"]
    assert out["logprobs"] is None
    for i, hand in enumerate([(["K", "5", "3"], 18), (["K", "5", "3"], 25)]):
        ids, mask = out["completion_ids"][i], out["env_mask"][i]
        assert len(ids) == len(mask)
        # the model's tokens are exactly its answers (each with its eos), the rest exactly the feedback turns
        answers = out["attempt_answers"][i]
        model = [t for t, m in zip(ids, mask) if m]
        assert model == [t for a in answers for t in tok(a, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]]
        env = tok.decode([t for t, m in zip(ids, mask) if not m])
        messages = [feedback(score(hand[0], a, "id", hand[1]), [10, 5, 3], hand[1]) for a in answers[:-1]]
        assert env == "".join(ro.template.text(m, ended_with_eos=True) for m in messages)
        assert out["model_tokens"][i] == len(model) and out["feedback_tokens"][i] == len(ids) - len(model)
        assert out["attempt_rewards"][i] == [score(hand[0], a, "id", hand[1]).reward for a in answers]
    # attempt 2 was conditioned on exactly the ids the trainer scores: prompt + completion so far
    second = policy.inputs[1]
    first_len = len(out["prompt_ids"][0])
    assert second[0] == out["prompt_ids"][0] + out["completion_ids"][0][: len(second[0]) - first_len]
    assert len(policy.inputs[2]) == 1  # only the unsolved episode went on


def test_rollout_ends_an_episode_the_budget_cannot_hold(tiny_model):
    _, tok = tiny_model
    _, prompts, ro, gen = _rollout(tok, attempts=3, budget=100, answer_tokens=40)
    out = ro.run(ScriptedPolicy(tok, [["Formula: 12+5+3", "Formula: 10*3-5-1"]]), gen, prompts)
    assert out["episode_end"] == ["budget", "budget"] and all(len(v) == 1 for v in out["attempt_verdicts"])
    assert all(sum(m) == len(m) for m in out["env_mask"])  # no feedback turn is left dangling


def test_rollout_refuses_a_prompt_outside_its_pool(tiny_model):
    _, tok = tiny_model
    _, prompts, ro, gen = _rollout(tok, attempts=2)
    with pytest.raises(KeyError, match="not in the RL prompt pool"):
        ro.run(ScriptedPolicy(tok, []), gen, [[{"role": "user", "content": "other"}]])


def test_episode_reward_logs_attempts_and_solved_shares():
    task = TaskConfig(attempts=3)
    logged = {}
    reward = VerifierReward(task, keep=1, episode_reward="discounted", gamma=0.5)
    got = reward(completions=["x"] * 3, cards=[["K"]] * 3, rule=["id"] * 3, target=[24] * 3,
                 log_metric=lambda k, v: logged.__setitem__(k, v),
                 attempt_verdicts=[["correct"], ["malformed", "correct"], ["malformed", "wrong_value", "wrong_value"]],
                 attempt_rewards=[[1.0], [0.0, 1.0], [0.0, 0.0, 0.0]], attempt_answers=[["a"], ["b", "c"], ["d"] * 3],
                 episode_end=["solved", "solved", "attempts"], model_tokens=[5, 9, 12], feedback_tokens=[0, 20, 40])
    assert got == [1.0, 0.5, 0.0]
    assert logged["attempts/mean"] == pytest.approx(2.0)
    assert [logged[f"attempts/solved_at_{k}"] for k in (1, 2, 3)] == pytest.approx([1 / 3, 1 / 3, 0])
    assert logged["verdict/correct"] == pytest.approx(2 / 3) and logged["verdict/wrong_value"] == pytest.approx(1 / 3)
    assert logged["attempts/feedback_tokens"] == pytest.approx(20.0)
    (kept,) = reward.take_recent()
    assert kept["attempts"] == [{"answer": "a", "verdict": "correct"}] and kept["reward"] == 1.0


def test_budgets_fit_every_attempt_or_are_refused(tiny_model):
    from raysweep.train.rl_worker import budgets

    _, tok = tiny_model
    base = ["task.num_cards=3", "task.targets=[12, 36]", "eval.n=16"]
    one = load_config(None, base)
    answer, whole = budgets(one, tok)
    assert answer == whole
    five = load_config(None, [*base, "task.attempts=5"])
    a5, w5 = budgets(five, tok)
    fb = longest_feedback(tok, five.task)
    assert a5 == answer and w5 == episode_budget(5, answer, fb) == 5 * answer + 4 * fb
    assert fb >= len(feedback_tokens(tok, TurnTemplate.of(tok), "You failed this trial because you used invalid "
                                     "numbers: [13, 13], you didn't use numbers: [10]", False))
    with pytest.raises(ConfigError, match=rf"rl.max_completion_length=100: .* needs {w5} tokens; set "
                                          rf"rl.max_completion_length to at least {w5}"):
        budgets(load_config(None, [*base, "task.attempts=5", "rl.max_completion_length=100"]), tok)
    assert budgets(load_config(None, [*base, "task.attempts=5", f"rl.max_completion_length={w5 + 7}"]), tok) \
        == (a5, w5 + 7)


def test_episode_settings_refuse_what_cannot_train_or_has_no_effect():
    with pytest.raises(ConfigError, match="rl.algorithm=rloo with task.attempts=5: TRL 1.16's RLOOTrainer has no "
                                          "rollout_func"):
        load_config(None, ["task.attempts=5", "rl.algorithm=rloo"])
    with pytest.raises(ConfigError, match="rl.episode_reward=discounted with task.attempts=1"):
        load_config(None, ["rl.episode_reward=discounted"])
    with pytest.raises(ConfigError, match="rl.gamma is the discount of rl.episode_reward=discounted"):
        load_config(None, ["task.attempts=2", "rl.gamma=0.5"])
    for bad in ("0", "1.5", "-0.1"):
        with pytest.raises(ConfigError, match="rl.gamma"):
            load_config(None, ["task.attempts=2", "rl.episode_reward=discounted", f"rl.gamma={bad}"])
    for bad in ("0", "11"):
        with pytest.raises(ConfigError, match="task.attempts"):
            load_config(None, [f"task.attempts={bad}"])
    ok = load_config(None, ["task.attempts=5", "rl.episode_reward=discounted", "rl.gamma=1"]).rl
    assert (ok.episode_reward, ok.gamma) == ("discounted", 1.0)


def test_episode_fields_change_a_run_id_only_when_set(tiny_path, tmp_path):
    from raysweep.train.rl import Start, run_id

    start = Start(tiny_path, None, "tiny")
    base = ["model.name=tiny", "task.attempts=3", f"output_dir={tmp_path}"]
    plain = run_id(load_config(None, base), start)
    assert "episode_reward" not in load_config(None, base).rl.identity()  # earlier runs keep their ids
    assert run_id(load_config(None, [*base, "rl.episode_reward=discounted"]), start) != plain
    assert run_id(load_config(None, [*base, "rl.episode_reward=discounted", "rl.gamma=0.5"]), start) != \
        run_id(load_config(None, [*base, "rl.episode_reward=discounted"]), start)


# ------------------------------------------------------------------------------------ two-attempt SFT examples


def test_revision_examples_fail_then_are_fixed_under_the_stated_rule():
    from raysweep.tasks.datasets import sft_dataset
    from raysweep.tasks.revisions import wrong_attempt

    task = TaskConfig(num_cards=3, prompt_style="short", face_values=(1, 13), target_values=(6, 40),
                      targets=(12, 36))
    plain = sft_dataset(task, 300, 0)
    ds = sft_dataset(task, 300, 0, revision_share=0.5)
    assert ds["prompt"] == plain["prompt"] and ds["completion"] == plain["completion"]  # the expert data is the same
    revised = [r for r in ds["revision"] if r]
    assert 110 <= len(revised) <= 190
    kinds = set()
    for row in range(len(ds)):
        turns = ds["revision"][row]
        if not turns:
            continue
        wrong, fb = turns
        assert wrong["role"] == "assistant" and fb["role"] == "user"
        assert fb["content"].startswith("You failed this trial because ")
        # the feedback is the verifier's on that answer; the expert answer after it is correct
        text = ds["prompt"][row][-1]["content"]
        assert "count" in text
        kinds.add(fb["content"].split("because ")[1][:14])
    assert {"you used inval", "your formula u"} <= kinds
    # the face cards counted as the training rule's 10 under a rule that says otherwise: the OOD failure
    from raysweep.tasks.generalpoints import Rule, _rule_values

    rule = Rule("varied", _rule_values({"J": 5, "Q": 7, "K": 2}))
    seen = {wrong_attempt(("J", "4", "3"), rule, 17, "5*4-3", task, random.Random(s))[0] for s in range(30)}
    assert seen == {"train_values", "wrong_number", "wrong_value"}
    for s in range(30):
        kind, text, _ = wrong_attempt(("J", "4", "3"), rule, 17, "5*4-3", task, random.Random(s))
        assert not score(("J", "4", "3"), text, rule, 17).correct
        if kind == "train_values":
            assert "10" in text.splitlines()[0]


def test_revision_turns_are_masked_out_of_the_sft_loss(tiny_model):
    from raysweep.train.turn_masks import tokenize_turns

    _, tok = tiny_model
    prompt = [{"role": "user", "content": "Cards: J, 4, 3"}]
    turns = [{"role": "assistant", "content": "Formula: 10*4-3"},
             {"role": "user", "content": "You failed this trial because you used invalid numbers: [10]"},
             {"role": "assistant", "content": "Formula: 5*4-3"}]
    out = tokenize_turns(tok, prompt, turns)
    ids, mask = out["input_ids"], out["completion_mask"]
    assert tok.decode(ids) == tok.apply_chat_template(prompt + turns, tokenize=False)
    # the loss is on the expert's answer only: neither the feedback nor the wrong first answer is imitated
    assert tok.decode([t for t, m in zip(ids, mask) if m]) == "Formula: 5*4-3<|im_end|>\n"
    assert mask == sorted(mask)  # one trailing span
    with pytest.raises(ValueError, match="ends with the expert"):
        tokenize_turns(tok, prompt, turns[:2])
    # a single-turn example is masked as TRL masks a prompt/completion pair
    single = tokenize_turns(tok, prompt, turns[2:])
    n_prompt = len(tok(tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True),
                       add_special_tokens=False)["input_ids"])
    assert single["completion_mask"] == [0] * n_prompt + [1] * (len(single["input_ids"]) - n_prompt)


def test_revision_share_changes_a_trunk_id_only_when_set(tmp_path):
    from raysweep.train.sft import config_trunk_id as trunk_id

    base = ["model.name=tiny", f"output_dir={tmp_path}"]
    assert "revision_share" not in load_config(None, base).sft.identity()
    assert trunk_id(load_config(None, [*base, "sft.revision_share=0.3"])) != trunk_id(load_config(None, base))
    with pytest.raises(ConfigError, match="sft.revision_share"):
        load_config(None, [*base, "sft.revision_share=1.5"])


def test_revision_episodes_of_up_to_n_attempts():
    from raysweep.tasks.datasets import sft_dataset
    from raysweep.tasks.generalpoints import Rule, _rule_values
    from raysweep.tasks.revisions import revision_turns

    task = TaskConfig(num_cards=3, prompt_style="short", face_values=(1, 13), target_values=(6, 40),
                      targets=(12, 36))
    two = sft_dataset(task, 200, 0, revision_share=0.5)
    assert two["revision"] == sft_dataset(task, 200, 0, revision_share=0.5, revision_attempts=2)["revision"]
    five = sft_dataset(task, 200, 0, revision_share=0.5, revision_attempts=5)
    assert five["prompt"] == two["prompt"] and five["completion"] == two["completion"]
    wrong = [len(r) // 2 for r in five["revision"] if r]
    assert set(wrong) == {1, 2, 3, 4} and all(len(r) // 2 == 1 for r in two["revision"] if r)
    for turns, hand, target in zip(five["revision"], five["cards"], five["target"], strict=True):
        assert [t["role"] for t in turns] == ["assistant", "user"] * (len(turns) // 2)
        answers = [t["content"] for t in turns[::2]]
        assert len(set(answers)) == len(answers)  # no wrong answer repeats
        assert all(t["content"].startswith("You failed this trial because ") for t in turns[1::2])
    # each wrong answer is wrong under the stated rule, and its feedback is the verifier's on it
    rule = Rule("varied", _rule_values({"J": 5, "Q": 7, "K": 2}))
    for s in range(20):
        turns = revision_turns(("J", "4", "3"), rule, 17, "5*4-3", task, random.Random(s), attempts=5)
        assert 1 <= len(turns) // 2 <= 4
        for answer, fb in zip(turns[::2], turns[1::2]):
            assert not score(("J", "4", "3"), answer["content"], rule, 17).correct
            assert fb["content"] == judge(("J", "4", "3"), answer["content"], rule, 17, task)[1]


def test_revision_attempts_change_a_trunk_id_only_when_set(tmp_path):
    from raysweep.train.sft import config_trunk_id as trunk_id

    base = ["model.name=tiny", f"output_dir={tmp_path}", "sft.revision_share=0.3"]
    assert "revision_attempts" not in load_config(None, base).sft.identity()
    assert trunk_id(load_config(None, [*base, "sft.revision_attempts=5"])) != trunk_id(load_config(None, base))
    with pytest.raises(ConfigError, match="revision_share is 0"):
        load_config(None, ["model.name=tiny", "sft.revision_attempts=5"])
    with pytest.raises(ConfigError, match="sft.revision_attempts"):
        load_config(None, [*base, "sft.revision_attempts=1"])
