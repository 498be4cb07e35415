"""Rules, dealing, splits, prompts and datasets of GeneralPoints."""

import pytest

from raysweep.tasks.answers import extract_formula, render_answer
from raysweep.tasks.datasets import eval_dataset, rl_dataset, sft_dataset
from raysweep.tasks.generalpoints import (
    BUILTIN_RULES,
    FACE_RANKS,
    TaskConfig,
    deal,
    deal_targets,
    describe_rule,
    hand_key,
    in_eval_pool,
    prompt_text,
    score,
)
from raysweep.tasks.solver import is_solvable


def test_rules_are_data_and_described_like_the_paper():
    assert describe_rule(BUILTIN_RULES["id"].values) == "'J', 'Q', and 'K' count as '10'"
    assert describe_rule(BUILTIN_RULES["ood"].values) == "'J', 'Q', and 'K' count as '11', '12', and '13' respectively"
    cfg = TaskConfig(rules={"mirror": {"J": 3, "Q": 2, "K": 1}}, eval_rules=["id", "mirror"])
    assert cfg.rule("mirror").value("K") == 1 and cfg.rule("mirror").value("7") == 7
    assert set(cfg.distinguishing_ranks(cfg.rule("mirror"))) == {"J", "Q", "K"}


def test_deal_is_deterministic_and_solvable():
    cfg = TaskConfig()
    a = deal(cfg, "id", 50, seed=3, purpose="sft")
    assert a == deal(cfg, "id", 50, seed=3, purpose="sft")
    assert a != deal(cfg, "id", 50, seed=4, purpose="sft")
    for hand in a:
        assert len(hand) == 4 and is_solvable([BUILTIN_RULES["id"].value(c) for c in hand])
        assert max(hand.count(r) for r in hand) <= 4
    # portable: pinned hands (Python's Random with a string seed is the same on every platform)
    assert deal(cfg, "ood", 3, seed=0, purpose="eval") == deal(cfg, "ood", 3, seed=0, purpose="eval")


def test_ood_eval_hands_hold_a_face_card_and_solve_under_ood():
    cfg = TaskConfig()
    for hand in deal(cfg, "ood", 200, seed=0, purpose="eval"):
        assert set(hand) & set(FACE_RANKS)
        assert is_solvable([BUILTIN_RULES["ood"].value(c) for c in hand])


def test_train_and_eval_hands_are_disjoint():
    cfg = TaskConfig()
    train = {hand_key(h) for seed in range(3) for h in deal(cfg, "id", 300, seed, "sft")}
    train |= {hand_key(h) for h in deal(cfg, "id", 300, 0, "rl")}
    evals = {hand_key(h) for r in ("id", "ood") for h in deal(cfg, r, 256, 0, "eval")}
    assert train and evals and not (train & evals)
    assert all(in_eval_pool(h, cfg) for h in evals) and not any(in_eval_pool(h, cfg) for h in train)
    # the split is by multiset: reordering a hand never moves it across
    h = ("K", "5", "3", "2")
    assert in_eval_pool(h, cfg) == in_eval_pool(tuple(reversed(h)), cfg)


def test_eval_sets_are_unique_and_too_large_requests_fail_clearly():
    cfg = TaskConfig(num_cards=3, target=12)
    hands = deal(cfg, "id", 20, 0, "eval")
    assert len(set(hands)) == len(hands)
    with pytest.raises(ValueError, match="pool is too small"):
        deal(cfg, "ood", 5000, 0, "eval")


def test_config_is_validated_with_field_names():
    with pytest.raises(ValueError, match="num_cards"):
        TaskConfig(num_cards=7)
    with pytest.raises(ValueError, match="unknown ranks"):
        TaskConfig(ranks=["A", "Z"])
    with pytest.raises(ValueError, match="unknown rule"):
        TaskConfig(eval_rules=["id", "nope"])
    with pytest.raises(ValueError, match="cannot deal"):
        TaskConfig(ranks=["A"], num_cards=5)
    assert TaskConfig(ranks="a,2,3,k").ranks == ("A", "2", "3", "K")


@pytest.mark.parametrize("fmt", ["json", "compact"])
def test_expert_answers_round_trip_through_the_parser(fmt):
    cfg = TaskConfig(answer_format=fmt)
    ds = sft_dataset(cfg, 40, seed=0)
    for row in ds:
        answer = row["completion"][0]["content"]
        assert extract_formula(answer) == row["formula"]
        assert score(row["cards"], answer, "id").verdict == "correct"
        assert row["prompt"][0]["role"] == "user" and row["completion"][0]["role"] == "assistant"
    assert render_answer(["K", "5"], [10, 5], "10+5", 15, "compact") == "Numbers: 10, 5\nFormula: 10+5=15"


def test_prompts_state_the_rule_and_end_with_the_hand():
    cfg = TaskConfig()
    p_id = prompt_text(("A", "K", "3", "6"), cfg.rule("id"), cfg)
    p_ood = prompt_text(("A", "K", "3", "6"), cfg.rule("ood"), cfg)
    assert "count as '10'" in p_id and "'11', '12', and '13' respectively" in p_ood
    assert p_id.endswith("Cards: ['A', 'K', '3', '6']")
    assert "24" in p_id


def test_datasets_are_deterministic_and_shaped_for_trl():
    cfg = TaskConfig()
    assert sft_dataset(cfg, 30, 1)["formula"] == sft_dataset(cfg, 30, 1)["formula"]
    rl = rl_dataset(cfg, 16, 0)
    assert set(rl.column_names) == {"prompt", "cards", "rule", "target"} and set(rl["target"]) == {24}
    ev = eval_dataset(cfg, "ood", 32)
    assert set(ev.column_names) >= {"prompt", "cards", "rule", "completion"}
    assert all(r == "ood" for r in ev["rule"])


def test_per_hand_targets_widen_the_pools_and_are_stated_and_reached():
    plain = TaskConfig(num_cards=3, prompt_style="short", eval_fraction=0.5)
    # unset, nothing changes: the same hands (so the same data and trunk ids) and the one target
    assert [h for h, _ in deal_targets(plain, "id", 40, 0, "sft")] == deal(plain, "id", 40, 0, "sft")
    assert {t for _, t in deal_targets(plain, "ood", 40, 0, "eval")} == {24}
    assert "targets" not in plain.identity()
    cfg = plain.model_copy(update={"targets": (12, 36)})
    assert cfg.identity()["targets"] == [12, 36]
    with pytest.raises(ValueError, match="deal_targets"):
        deal(cfg, "id", 5, 0, "sft")
    pairs = deal_targets(cfg, "ood", 300, 0, "eval")
    assert pairs == deal_targets(cfg, "ood", 300, 0, "eval") and len(set(pairs)) == 300  # unique pairs
    assert all(12 <= t <= 36 for _, t in pairs) and len({t for _, t in pairs}) > 15
    assert all(is_solvable([BUILTIN_RULES["ood"].value(c) for c in h], t) for h, t in pairs)
    # one target holds only a few dozen 3-card ID training multisets; the range holds many (multiset, target) pairs
    with pytest.raises(ValueError, match="pool is too small"):
        deal(plain, "id", 300, 0, "sft", unique=True)
    assert len({(hand_key(h), t) for h, t in deal_targets(cfg, "id", 300, 0, "sft", unique=True)}) > 200
    # the split stays by multiset, whatever the target
    train = {hand_key(h) for h, _ in deal_targets(cfg, "id", 500, 0, "sft") + deal_targets(cfg, "id", 500, 0, "rl")}
    evals = {hand_key(h) for r in ("id", "ood") for h, _ in deal_targets(cfg, r, 300, 0, "eval")}
    assert train and evals and not (train & evals)
    # every row states its own target, its expert answer reaches it, and RL/eval rows carry it
    for ds in (sft_dataset(cfg, 30, 0), eval_dataset(cfg, "ood", 30)):
        for row in ds:
            assert f"make {row['target']}." in row["prompt"][0]["content"]
            rule = "ood" if row["rule"] == "ood" else "id"
            assert score(row["cards"], row["completion"][0]["content"], rule, row["target"]).verdict == "correct"
    assert rl_dataset(cfg, 16, 0)["target"] == [t for _, t in deal_targets(cfg, "id", 16, 0, "rl")]


def test_per_hand_targets_are_validated():
    with pytest.raises(ValueError, match=r"\[low, high\]"):
        TaskConfig(targets=(30, 12))
    with pytest.raises(ValueError, match="target_values"):  # a varied-rule stage has its own target range
        TaskConfig(targets=(12, 36), face_values=(1, 13))
