"""Evaluation: interval maths (pure) and batched generation end to end on the tiny model."""

import json
import math

import pytest

from raysweep.evaluate import (
    EvalConfig,
    common_prefix_len,
    evaluate,
    format_table,
    generate,
    summarise,
    wilson,
)
from raysweep.tasks.generalpoints import TaskConfig


def test_wilson_known_values():
    lo, hi = wilson(0, 64)
    assert lo == 0.0 and hi == pytest.approx(0.0566, abs=1e-3)
    lo, hi = wilson(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)


def test_summarise_counts_and_pass_at_k():
    verdicts = [["correct", "malformed"], ["wrong_value", "wrong_value"], ["correct", "correct"]]
    r = summarise("ood", [["a", "b"]] * 3, verdicts)
    assert r.n == 3 and r.answers == 6 and r.correct == 3 and math.isclose(r.accuracy, 0.5)
    assert r.verdicts == {"correct": 3, "wrong_value": 2, "wrong_cards": 0, "train_rule_values": 0, "malformed": 1}
    assert r.pass_at_k == pytest.approx(2 / 3) and r.ci_method == "wilson-clustered"
    r1 = summarise("id", [["a"]] * 2, [["correct"], ["malformed"]])
    assert r1.ci_method == "wilson" and r1.pass_at_k is None


def test_common_prefix_len():
    assert common_prefix_len([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert common_prefix_len([[1, 2, 3], [1, 2, 3]]) == 2  # one token stays in each suffix
    assert common_prefix_len([[7, 8]]) == 1


def test_samples_need_temperature():
    with pytest.raises(ValueError, match="temperature"):
        EvalConfig(samples=4)


@pytest.mark.integration
def test_generation_with_shared_prefix_matches_plain_left_padding(tiny_model):
    model, tok = tiny_model
    from raysweep.tasks.datasets import eval_dataset

    ds = eval_dataset(TaskConfig(), "ood", 12)
    cfg = EvalConfig(batch_size=5)
    shared, n1 = generate(model, tok, ds["prompt"], cfg, 12, progress=None, share_prefix=True)
    plain, n2 = generate(model, tok, ds["prompt"], cfg, 12, progress=None, share_prefix=False)
    assert shared == plain and n1 == n2 > 0
    one_by_one, _ = generate(model, tok, ds["prompt"], EvalConfig(batch_size=1), 12, progress=None)
    assert one_by_one == shared


@pytest.mark.integration
def test_evaluate_end_to_end_on_tiny(tiny_model):
    model, tok = tiny_model
    task = TaskConfig()
    cfg = EvalConfig(n=16, batch_size=8, max_new_tokens=16)
    res = evaluate(model, tok, task, cfg, progress=None)
    assert list(res) == ["id", "ood"]
    for rule, r in res.items():
        assert r.n == 16 and r.n_prompts == 16 and sum(r.verdicts.values()) == 16
        assert 0.0 <= r.ci95[0] <= r.accuracy <= r.ci95[1] <= 1.0
        assert len(r.records) == 16 and all(len(rec["answers"]) == 1 for rec in r.records)
        assert r.tokens_per_s > 0 and r.mean_new_tokens > 0
        json.dumps(r.summary())
    # a random model writes no formula: every answer is malformed or wrong, never correct
    assert res["id"].correct == 0
    again = evaluate(model, tok, task, cfg, rules=["ood"], progress=None)
    assert [rec["answers"] for rec in again["ood"].records] == [rec["answers"] for rec in res["ood"].records]
    assert "ood" in format_table(res)


@pytest.mark.integration
def test_sampling_is_seeded(tiny_model):
    model, tok = tiny_model
    task = TaskConfig()
    cfg = EvalConfig(n=4, batch_size=4, max_new_tokens=8, temperature=1.0, samples=3, seed=5)
    a = evaluate(model, tok, task, cfg, rules=["id"], progress=None)["id"]
    b = evaluate(model, tok, task, cfg, rules=["id"], progress=None)["id"]
    assert a.n == 4 and a.answers == 12 and a.samples == 3 and a.pass_at_k is not None
    assert a.ci_method == "wilson-clustered" and all(len(r["answers"]) == 3 for r in a.records)
    assert [r["answers"] for r in a.records] == [r["answers"] for r in b.records]
    assert len({ans for r in a.records for ans in r["answers"]}) > 1  # sampling, not greedy
    # the greedy answer beside the sampled pass@1: the same as a greedy evaluation's
    greedy = evaluate(model, tok, task, EvalConfig(n=4, batch_size=4, max_new_tokens=8), rules=["id"], progress=None)
    assert [r["greedy"]["answer"] for r in a.records] == [r["answers"][0] for r in greedy["id"].records]
    assert a.greedy_accuracy == greedy["id"].accuracy and a.greedy_ci95 == greedy["id"].ci95


@pytest.mark.integration
def test_expert_loss_with_shared_prefix_matches_full_sequences(tiny_model):
    from raysweep.evaluate import expert_loss
    from raysweep.tasks.datasets import eval_dataset

    model, tok = tiny_model
    ds = eval_dataset(TaskConfig(), "ood", 10)
    shared = expert_loss(model, tok, ds["prompt"], ds["completion"], batch_size=4, share_prefix=True)
    full = expert_loss(model, tok, ds["prompt"], ds["completion"], batch_size=3, share_prefix=False)
    assert shared[1] == full[1] > 10 * 10  # every completion token counted once
    assert shared[0] / shared[1] == pytest.approx(full[0] / full[1], rel=1e-4)


def test_train_set_is_distinct_problems_of_the_trunks_own_sft_examples():
    from raysweep.evaluate import train_set
    from raysweep.tasks.datasets import sft_dataset
    from raysweep.tasks.generalpoints import problem_of

    task = TaskConfig(num_cards=3, eval_fraction=0.5, targets=(12, 36))
    rows = sft_dataset(task, 200, seed=1)
    (name, ds), = train_set(task, EvalConfig(train_n=20), rows).items()
    assert name == "id-train" and len(ds) == 20
    probs = [problem_of(c, task.rule("id"), t) for c, t in zip(ds["cards"], ds["target"])]
    assert len(set(probs)) == 20 and set(ds["prompt"][i][0]["content"] for i in range(20)) <= \
        {p[0]["content"] for p in rows["prompt"]}
    assert train_set(task, EvalConfig(train_n=0), rows) == {}
    assert train_set(task.model_copy(update={"face_values": (1, 13)}), EvalConfig(), rows) == {}


@pytest.mark.integration
def test_multi_attempt_evaluation_feeds_back_and_replays(tiny_model):
    from raysweep.attempts import solved_at
    from raysweep.tasks.generalpoints import score

    model, tok = tiny_model
    task = TaskConfig(attempts=3)
    cfg = EvalConfig(n=6, batch_size=6, max_new_tokens=12)
    r = evaluate(model, tok, task, cfg, rules=["ood"], progress=None)["ood"]
    accs = [a["accuracy"] for a in r.accuracy_at_attempt]
    assert r.attempts == 3 and len(accs) == 3 and accs == sorted(accs) and r.accuracy == accs[-1]
    assert all(a["n"] == 6 for a in r.accuracy_at_attempt)
    rule = task.rule("ood")
    for rec in r.records:
        (episode,) = rec["attempts"]
        verdicts = [score(rec["cards"], a["answer"], rule, 24, "binary", task.rule("id")).verdict for a in episode]
        assert verdicts == [a["verdict"] for a in episode]  # the stored episode replays to the same verdicts
        assert rec["solved_at"] == [solved_at(verdicts)] and rec["answers"] == [episode[-1]["answer"]]
        assert len(episode) == 3 or verdicts[-1] == "correct"  # only a correct answer ends an episode early
    assert "within k attempts" in format_table({"ood": r})
