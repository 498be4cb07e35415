"""Rules, dealing, splits, prompts and datasets of GeneralPoints."""

from pathlib import Path

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
    PoolTooSmall,
    deal_varied,
    eval_problems,
    hand_key,
    in_eval_pool,
    problem_in_eval,
    problem_in_rl_pool,
    problem_label,
    problem_of,
    prompt_text,
    score,
)
from raysweep.config import ConfigError, load_config
from raysweep.tasks.solver import is_solvable

JOBS = Path(__file__).parent.parent / "jobs"


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


def _problems(pairs, cfg, rule):
    return [problem_of(h, cfg.rule(rule), t) for h, t in pairs]


def test_the_split_is_by_problem_under_the_training_rule():
    cfg = TaskConfig()
    id_rule = cfg.rule("id")
    train = {problem_of(h, id_rule, 24) for seed in range(3) for h in deal(cfg, "id", 300, seed, "sft")}
    train |= {problem_of(h, id_rule, 24) for h in deal(cfg, "id", 300, 0, "rl")}
    # every ID evaluation problem, and the ID twin of every OOD evaluation hand, is outside training
    twins = {problem_of(h, id_rule, 24) for r in ("id", "ood") for h in deal(cfg, r, 128, 0, "eval")}
    assert train and twins and not (train & twins)
    # (J, 4, 2) and (K, 4, 2) are one ID problem: the same side of the split, whatever the ranks or order
    assert problem_of(("J", "4", "2"), id_rule, 24) == problem_of(("2", "K", "4"), id_rule, 24) == ((2, 4, 10), 24)
    assert in_eval_pool(("J", "4", "2"), cfg) == in_eval_pool(("2", "K", "4"), cfg)
    assert problem_label(((2, 4, 10), 24)) == "2,4,10=24"


def test_eval_sets_hold_distinct_problems_and_small_pools_are_refused():
    cfg = TaskConfig(num_cards=3, target=12)
    for rule in ("id", "ood"):
        probs = _problems(deal_targets(cfg, rule, 12, 0, "eval"), cfg, rule)
        assert len(set(probs)) == len(probs) == 12
    pool = len(eval_problems(cfg, "ood", None))
    with pytest.raises(PoolTooSmall, match=rf"holds {pool} distinct problems, fewer than eval.n=5000.*task.targets"):
        deal(cfg, "ood", 5000, 0, "eval")
    # a config whose pool is too small fails at load time, naming eval.n and the knobs
    with pytest.raises(ConfigError, match="eval.n=128.*task.num_cards"):
        load_config(None, ["task.num_cards=3", "eval.n=128"])
    # the split is part of every task identity: trunks made on the hand-multiset split are never found
    assert TaskConfig().identity()["split"] == "problem"


def test_no_training_example_computes_with_an_evaluation_problem_under_any_rule():
    # a configured OOD rule whose face value is an ID number: (J, 2, 3) under 'five' is the problem 2, 3, 5
    cfg = TaskConfig(num_cards=3, target=12, rules={"five": {"J": 5, "Q": 5, "K": 5}}, eval_rules=["id", "five"],
                     eval_fraction=0.5)
    evals = {r: set(_problems(eval_problems(cfg, r, None), cfg, r)) for r in cfg.eval_rules}
    trained = set(_problems(deal_targets(cfg, "id", 400, 0, "sft") + deal_targets(cfg, "id", 400, 0, "rl"), cfg, "id"))
    assert evals["five"] and not (trained & (evals["id"] | evals["five"]))
    varied = TaskConfig(num_cards=3, target=12, face_values=(1, 13), eval_fraction=0.5)
    seen = {problem_of(h, rule, t) for h, rule, t in deal_varied(varied, 2000, 0, "sft")}
    ev = {r: set(_problems(eval_problems(varied, r, None), varied, r)) for r in varied.eval_rules}
    assert not (seen & (ev["id"] | ev["ood"]))


def test_a_three_way_split_gives_rl_held_out_problems_no_supervised_example_poses():
    split = {"num_cards": 3, "targets": (12, 36), "eval_fraction": 0.5}
    two, three = TaskConfig(**split), TaskConfig(**split, rl_fraction=0.2)
    rl = _problems(deal_targets(three, "id", 400, 0, "rl"), three, "id")
    sft = _problems(deal_targets(three, "id", 400, 0, "sft"), three, "id")
    evals = set(_problems(eval_problems(three, "id", None), three, "id"))
    assert all(problem_in_rl_pool(p, three) for p in rl) and not any(problem_in_rl_pool(p, three) for p in sft)
    assert len(set(rl)) > 120 and not set(rl) & evals and not set(sft) & (evals | set(rl))
    # RL's share is taken out of the held-out half: a base pre-trained on the two-way split never saw one either,
    # and evaluation keeps the rest of that half (fewer problems, each one still held out)
    assert all(problem_in_eval(p, two) for p in set(rl) | evals)
    assert 256 < len(evals) < len(eval_problems(two, "id", None)) and len(eval_problems(three, "ood", None)) > 256
    # with two pools, RL shares SFT's problems
    assert set(_problems(deal_targets(two, "id", 400, 0, "rl"), two, "id")) & set(
        _problems(deal_targets(two, "id", 400, 0, "sft"), two, "id"))
    # a varied-rule pre-training example never computes with an RL problem (its own values, e.g. J=7 in (J, 7, 2))
    varied = TaskConfig(**split, rl_fraction=0.2, face_values=(1, 13), target_values=(12, 36))
    own = {problem_of(h, rule, t) for h, rule, t in deal_varied(varied, 3000, 0, "sft")}
    assert not own & set(rl) and not any(problem_in_rl_pool(p, varied) for p in own)
    # only training-rule problems can be RL problems; the share must leave evaluation problems
    assert not problem_in_rl_pool(((11, 12, 13), 36), three) and not problem_in_rl_pool(rl[0], two)
    with pytest.raises(ValueError, match=r"rl_fraction \(0.5\) is taken out of task.eval_fraction \(0.5\)"):
        TaskConfig(**split | {"rl_fraction": 0.5})
    with pytest.raises(ConfigError, match="pretrain.task.rl_fraction: not settable"):
        from raysweep.train.pretrain import stage_config

        stage_config(load_config(JOBS / "reproduce-cpu.yaml",
                                 ["pretrain.steps=10", "pretrain.task={rl_fraction: 0.1}"]))


def test_rl_under_stated_rules_poses_rules_to_read_and_no_evaluation_problem():
    """rl.rules (the positive control): each prompt states a rule that must be read (a card it values differently
    from the training rule), never an evaluated rule's statement, on a training-rule RL problem, and poses no
    evaluation problem under its own rule; a lone face card takes every value, the OOD one included (no bias against
    it); the row's rule name carries the rule to the scorer and the feedback."""
    from raysweep.tasks.feedback import judge
    from raysweep.tasks.generalpoints import deal_stated, parse_stated, stated_rule

    cfg = TaskConfig(num_cards=3, targets=(12, 36), eval_fraction=0.5, rl_fraction=0.2,
                     rules={"perm": {"J": 12, "Q": 13, "K": 11}})
    dealt = deal_stated(cfg, ["varied", "perm"], 600, 0, face_values=(1, 13))
    assert dealt == deal_stated(cfg, ["varied", "perm"], 600, 0, face_values=(1, 13))  # seeded
    assert dealt != deal_stated(cfg, ["varied", "perm"], 600, 1, face_values=(1, 13))
    assert [r.name == "perm" for _, r, _ in dealt[:4]] == [False, True, False, True]  # in turn
    train = cfg.rule("id")
    evaluated = [cfg.rule(r) for r in cfg.eval_rules]
    evals = {r: set(_problems(eval_problems(cfg, r, None), cfg, r)) for r in cfg.eval_rules}
    for hand, rule, target in dealt:
        assert any(rule.value(c) != train.value(c) for c in hand)  # something to read
        assert not any(all(rule.value(f) == e.value(f) for f in FACE_RANKS) for e in evaluated)  # not an evaluated rule
        assert problem_in_rl_pool(problem_of(hand, train, target), cfg)  # the split stays by the training rule
        own = problem_of(hand, rule, target)
        assert not any(own in ev for ev in evals.values())
        assert is_solvable(list(own[0]), target)
    assert len({r.name for _, r, _ in dealt}) > 100  # varied: a fresh rule per prompt
    lone = {rule.value(h[[c in FACE_RANKS for c in h].index(True)]) for h, rule, _ in dealt
            if rule.name != "perm" and sum(c in FACE_RANKS for c in h) == 1}
    assert lone == set(range(1, 14)) - {10}  # 10 alone needs no reading; 11, 12 and 13 do occur
    rows = rl_dataset(cfg, 50, 0, rules=("varied",), face_values=(2, 9), face_tied=1.0).to_list()
    for row in rows:
        rule = cfg.rule(row["rule"])  # a stated name resolves under any config
        assert rule == parse_stated(row["rule"]) and len({rule.value(f) for f in FACE_RANKS}) == 1  # tied
        assert all(2 <= rule.value(f) <= 9 for f in FACE_RANKS) and rule.text() in row["prompt"][0]["content"]
        values = [rule.value(c) for c in row["cards"]]
        answer = f"Numbers: x\nFormula: {'+'.join(map(str, values))}"
        s, message = judge(row["cards"], answer, rule, row["target"], cfg, train)
        assert s.verdict in ("correct", "wrong_value") and (message is None) == s.correct
    # an ID answer to a stated rule (J, Q, K as 10) is the rule ignored, and the feedback names the stated values
    hand, rule, target = next((h, r, t) for h, r, t in dealt if r.name != "perm" and "J" in h and r.value("J") != 10)
    wrong = f"Formula: {'+'.join(str(train.value(c)) for c in hand)}"
    s, message = judge(hand, wrong, rule, target, cfg, train)
    assert s.verdict == "train_rule_values" and str(rule.value("J")) in message
    assert stated_rule({"J": 4, "K": 2}).name == "stated:J=4,K=2"
    # the RL run's id: unchanged without rl.rules (runs made before it keep theirs); with it, the dealing's version
    from raysweep.tasks.generalpoints import STATED_DEAL
    from raysweep.train.rl_config import RLConfig

    assert not {"rules", "face_values", "face_tied", "stated_deal"} & set(RLConfig().identity())
    assert RLConfig(rules=("varied",)).identity()["stated_deal"] == STATED_DEAL
    with pytest.raises(KeyError, match="malformed stated rule"):
        cfg.rule("stated:J=x")


@pytest.mark.parametrize("job", ["quick.yaml", "reproduce-cpu.yaml", "control-cpu.yaml"])
def test_shipped_sweeps_never_train_on_an_evaluation_problem(job):
    """With the dataset builders: no ID evaluation problem is an SFT, RL or pre-training problem (the config's
    stage or every stage behind the shipped base), no OOD evaluation hand's ID twin is trained, and no evaluation set
    repeats a problem; with a three-way split (task.rl_fraction), every RL prompt poses an RL problem (under the
    training rule, whatever rule it states: rl.rules) and no SFT or pre-training example does."""
    from raysweep.train.pretrain import pretraining_stages, stage_problems

    cfg = load_config(JOBS / job)
    task = cfg.task
    rows = [r for s in cfg.sft.seeds for r in sft_dataset(task, cfg.sft.num_examples, s)]
    rl_seeds = cfg.rl.grid.get("seed", [cfg.rl.seed])
    rl_rows = [r for s in rl_seeds for r in rl_dataset(task, cfg.rl.num_prompts, s, **cfg.rl.stated())]
    assert bool(cfg.rl.rules) == (job == "control-cpu.yaml") and all(
        r["rule"].startswith("stated:") == bool(cfg.rl.rules) for r in rl_rows)
    trained = {problem_of(r["cards"], task.rule(r["rule"]), r["target"]) for r in rows}
    # the config's stage and every stage behind its base, as the base's manifest lists them; analogue-base's
    # predates that list, so its first stage is named here (jobs/analogue-base.yaml's first command)
    earlier = (JOBS / "analogue-stage1.yaml",) if cfg.model.name in ("analogue-base", "analogue-revise") else ()
    stages = dict(pretraining_stages(cfg, earlier))
    recorded = stages.get(f"{cfg.model.name} (its config.yaml)")  # a shipped base's stage, as it recorded it
    for stage in stages.values():  # the same held-out share (which the sweep may split into evaluation and RL)
        assert (stage.task.split_seed, stage.task.eval_fraction) == (task.split_seed, task.eval_fraction)
    if cfg.model.name == "analogue-base":
        assert recorded.model.name == "outputs/bases/analogue-stage1"
    assert len(stages) == (cfg.pretrain.steps > 0) + {"analogue-base": 2, "analogue-revise": 3}.get(cfg.model.name, 0)
    for stage in stages.values():
        trained |= set(stage_problems(stage))
    rl_problems = {problem_of(r["cards"], task.rule(r["rule"]), r["target"]) for r in rl_rows}
    rl_twins = {problem_of(r["cards"], task.rule(task.train_rule), r["target"]) for r in rl_rows}
    if task.rl_fraction:
        assert all(problem_in_rl_pool(p, task) for p in rl_twins) and not trained & rl_twins
        assert not any(problem_in_rl_pool(p, task) for p in trained)
    trained |= rl_problems | rl_twins
    for rule in task.eval_rules:
        ev = eval_dataset(task, rule, cfg.eval.n, cfg.eval.seed)
        own = [problem_of(c, task.rule(rule), t) for c, t in zip(ev["cards"], ev["target"])]
        twin = {problem_of(c, task.rule(task.train_rule), t) for c, t in zip(ev["cards"], ev["target"])}
        assert len(set(own)) == len(own) == cfg.eval.n, rule
        assert not (set(own) & trained) and not (twin & trained), rule


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


@pytest.mark.parametrize("fmt", ["json", "compact", "paired"])
def test_expert_answers_round_trip_through_the_parser(fmt):
    cfg = TaskConfig(answer_format=fmt)
    ds = sft_dataset(cfg, 40, seed=0)
    for row in ds:
        answer = row["completion"][0]["content"]
        assert extract_formula(answer) == row["formula"]
        assert score(row["cards"], answer, "id").verdict == "correct"
        assert row["prompt"][0]["role"] == "user" and row["completion"][0]["role"] == "assistant"
    assert render_answer(["K", "5"], [10, 5], "10+5", 15, "compact") == "Numbers: 10, 5\nFormula: 10+5=15"
    assert render_answer(["K", "5"], [10, 5], "10+5", 15, "paired") == "Numbers: K=10, 5=5\nFormula: 10+5=15"


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
    assert {t for _, t in deal_targets(plain, "ood", 20, 0, "eval")} == {24}
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
    with pytest.raises(ValueError, match="training pool is too small"):
        deal(plain, "id", 300, 0, "sft", unique=True)
    assert len({(hand_key(h), t) for h, t in deal_targets(cfg, "id", 300, 0, "sft", unique=True)}) > 200
    # the split is by (values, target): no trained ID problem is an evaluation problem, whatever the target
    train = set(_problems(deal_targets(cfg, "id", 500, 0, "sft") + deal_targets(cfg, "id", 500, 0, "rl"), cfg, "id"))
    twins = {p for r in ("id", "ood") for p in _problems(deal_targets(cfg, r, 300, 0, "eval"), cfg, "id")}
    assert train and twins and not (train & twins)
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
    # a varied-rule stage draws its examples' targets apart; task.targets sets its evaluation's
    stage = TaskConfig(num_cards=3, targets=(12, 36), face_values=(1, 13), target_values=(40, 60), eval_fraction=0.5)
    assert {t for _, _, t in deal_varied(stage, 50, 0, "sft")} <= set(range(40, 61))
    assert {t for _, t in deal_targets(stage, "ood", 50, 0, "eval")} <= set(range(12, 37))
