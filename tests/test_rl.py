"""RL stage: the verifier reward, config checks, and real GRPO/RLOO on Ray Train workers with DeepSpeed ZeRO."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import kill_tree

from raysweep.config import ConfigError, load_config
from raysweep.tasks.generalpoints import REWARD_SCHEMES, TaskConfig, score
from raysweep.train import trunk as T
from raysweep.train.rewards import VerifierReward, completion_text

# ------------------------------------------------------------------------------------ the reward

ANSWERS = [  # (cards, answer text, rule, verdict)
    (["4", "6", "2", "2"], "Numbers: 4, 6, 2, 2\nFormula: 4*6*(2-2+1)", "id", "wrong_cards"),
    (["4", "6", "2", "2"], "Numbers: 4, 6, 2, 2\nFormula: 4*6+2-2", "id", "correct"),
    (["4", "6", "2", "2"], '{"cards": ["4", "6", "2", "2"], "formula": "(4+2)*(6-2)=24"}', "id", "correct"),
    (["4", "6", "2", "2"], "Formula: 4*6+2*2", "id", "wrong_value"),
    (["K", "2", "A", "A"], "Formula: (10+2)*(1+1)", "id", "correct"),
    (["K", "2", "A", "A"], "Formula: (10+2)*(1+1)", "ood", "wrong_cards"),
    (["K", "2", "A", "A"], "Formula: 13*2-1-1", "ood", "correct"),
    (["4", "6", "2", "2"], "I think the answer is twenty-four", "id", "malformed"),
    (["4", "6", "2", "2"], "Formula: 4*6+(2-2", "id", "malformed"),
    (["4", "6", "2", "2"], "", "id", "malformed"),
]


@pytest.mark.parametrize("scheme", sorted(REWARD_SCHEMES))
def test_reward_agrees_with_score_on_every_verdict(scheme):
    task = TaskConfig(reward=scheme)
    reward = VerifierReward(task)
    logged = {}
    completions = [[{"role": "assistant", "content": a}] for _, a, _, _ in ANSWERS]  # TRL's conversational form
    got = reward(prompts=[None] * len(ANSWERS), completions=completions, cards=[c for c, *_ in ANSWERS],
                 rule=[r for *_, r, _ in ANSWERS], log_metric=lambda k, v: logged.__setitem__(k, v),
                 completion_ids=None, trainer_state=None)
    expected = [score(c, a, r, 24, scheme) for c, a, r, _ in ANSWERS]
    assert [e.verdict for e in expected] == [v for *_, v in ANSWERS]  # the table means what it says
    assert got == [e.reward for e in expected]
    assert got == [REWARD_SCHEMES[scheme][v] for *_, v in ANSWERS]
    assert logged["verdict/correct"] == pytest.approx(4 / len(ANSWERS))
    assert logged["verdict/malformed"] == pytest.approx(3 / len(ANSWERS))
    assert sum(logged.values()) == pytest.approx(1.0)


def test_reward_scores_each_prompt_at_its_own_target():
    task = TaskConfig(num_cards=3, targets=(12, 36))
    reward = VerifierReward(task)
    completions = ["Formula: 10+5+3", "Formula: 10+5+3", "Formula: 10*3-5"]
    got = reward(completions=completions, cards=[["K", "5", "3"]] * 3, rule=["id"] * 3, target=[18, 24, 25])
    assert got == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="no 'target' column"):
        reward(completions=completions, cards=[["K", "5", "3"]] * 3, rule=["id"] * 3)


def test_reward_refuses_a_dataset_without_its_columns():
    with pytest.raises(ValueError, match="'cards' and 'rule' columns"):
        VerifierReward(TaskConfig())(completions=["Formula: 1+1"], cards=[], rule=[])
    assert completion_text("plain") == "plain" and completion_text([{"content": "a"}, {"content": "b"}]) == "ab"


# ------------------------------------------------------------------------------------ config and planning


def test_rl_config_checks_name_the_field():
    with pytest.raises(ConfigError, match="give rl.checkpoint, or rl.sft_step"):
        load_config(None, ["rl.checkpoint=x", "rl.trunk=y", "rl.sft_step=2"])
    with pytest.raises(ConfigError, match="need rl.sft_step"):
        load_config(None, ["rl.trunk=y"])
    with pytest.raises(ConfigError, match="rl.sft_seed picks"):
        load_config(None, ["rl.trunk=y", "rl.sft_step=2", "rl.sft_seed=1"])
    with pytest.raises(ConfigError, match="must split evenly"):
        load_config(None, ["rl.batch_size=3", "rl.num_generations=3", "rl.num_workers=2"])
    with pytest.raises(ConfigError, match="rl.num_generations"):
        load_config(None, ["rl.num_generations=1"])
    with pytest.raises(ConfigError, match="rl.algorithm"):
        load_config(None, ["rl.algorithm=ppo"])
    rl = load_config(None, ["rl.max_steps=25", "rl.eval_every=10", "rl.batch_size=4", "rl.num_generations=8",
                            "rl.num_workers=2", "rl.gradient_accumulation_steps=2"]).rl
    assert rl.eval_steps() == [0, 10, 20, 25]
    assert rl.per_device_batch_size == 8  # 4 prompts x 8 completions over 2 workers x 2 micro-steps
    assert load_config(None, ["rl.eval_every=0", "rl.max_steps=5"]).rl.eval_steps() == [0, 5]


def test_rl_objective_options_refuse_what_has_no_effect_or_cannot_learn():
    # clipping acts only when a batch of rollouts is optimised more than once
    for bad in (["rl.epsilon=0.1"], ["rl.epsilon_high=0.28"], ["rl.grid={epsilon: [0.1, 0.2]}"],
                ["rl.grid={epsilon: [0.1, 0.2], num_iterations: [1, 2]}"]):
        with pytest.raises(ConfigError, match="num_iterations=1 the policy ratio is always 1"):
            load_config(None, bad)
    with pytest.raises(ConfigError, match="rl.grid.eval_every: bookkeeping"):  # cells that are one run
        load_config(None, ["rl.grid={eval_every: [1, 2]}"])
    ok = load_config(None, ["rl.num_iterations=2", "rl.epsilon=0.1", "rl.epsilon_high=0.28"]).rl
    assert (ok.num_iterations, ok.epsilon, ok.epsilon_high) == (2, 0.1, 0.28)
    assert load_config(None, ["rl.grid={epsilon: [0.1, 0.2], num_iterations: [2, 4]}"]).rl.grid["epsilon"] == [0.1, 0.2]
    # the paper's reward scale under per-group scaling ranks wrong answers: refused, naming both fields
    with pytest.raises(ConfigError, match="rl.scale_rewards=group with task.reward=paper"):
        load_config(None, ["task.reward=paper", "rl.scale_rewards=group"])
    with pytest.raises(ConfigError, match="scale_rewards=group with task.reward=paper"):
        load_config(None, ["task.reward=paper", "rl.grid={scale_rewards: [batch, group]}"])
    assert load_config(None, ["task.reward=binary", "rl.scale_rewards=group"]).rl.scale_rewards == "group"
    # RLOO has neither per-group scaling nor a choice of loss
    with pytest.raises(ConfigError, match="RLOO has no per-group scaling"):
        load_config(None, ["rl.algorithm=rloo", "rl.scale_rewards=group"])
    with pytest.raises(ConfigError, match="RLOO has one loss"):
        load_config(None, ["rl.algorithm=rloo", "rl.loss_type=grpo"])
    # defaults a TRL practitioner would pick: batch scaling, a short warm-up (10% of the steps)
    rl = load_config(None, ["rl.max_steps=40"]).rl
    assert (rl.scale_rewards, rl.warmup, rl.num_iterations) == ("batch", 4, 1)
    assert load_config(None, ["rl.max_steps=40", "rl.warmup_steps=0"]).rl.warmup == 0


def test_trainer_args_carry_the_objective():
    from trl import GRPOConfig, RLOOConfig

    from raysweep.train.rl_worker import objective_args

    cfg = load_config(None, ["rl.num_iterations=2", "rl.epsilon_high=0.28", "rl.scale_rewards=none",
                             "rl.loss_type=dr_grpo", "rl.mask_truncated_completions=true", "rl.max_steps=30"])
    g = objective_args(cfg.rl)
    assert g == dict(beta=0.04, num_iterations=2, epsilon=0.2, epsilon_high=0.28, mask_truncated_completions=True,
                     warmup_steps=3, scale_rewards="none", loss_type="dr_grpo")
    r = objective_args(load_config(None, ["rl.algorithm=rloo"]).rl)
    assert r["normalize_advantages"] is True and "scale_rewards" not in r  # scale_rewards=batch
    # every name is one TRL's configs take
    import dataclasses

    assert set(g) <= {f.name for f in dataclasses.fields(GRPOConfig)}
    assert set(r) <= {f.name for f in dataclasses.fields(RLOOConfig)}


def test_reward_keeps_a_few_scored_completions_for_auditing():
    reward = VerifierReward(TaskConfig(reward="paper"), keep=2)
    out = reward(completions=["Formula: (10+2)*(1+1)", "Formula: 13*2", "?"], cards=[["K", "2", "A", "A"]] * 3,
                 rule=["id"] * 3, target=[24] * 3)
    assert out == [5.0, -2.0, -3.0]
    got = reward.take_recent()
    assert [(g["verdict"], g["reward"], g["target"]) for g in got] == [("correct", 5.0, 24), ("wrong_cards", -2.0, 24)]
    assert got[0]["completion"] == "Formula: (10+2)*(1+1)" and reward.take_recent() == []


def test_start_must_be_named_and_must_exist(tmp_path):
    from raysweep.train.rl import resolve_start

    with pytest.raises(ConfigError, match="name the starting checkpoint"):
        resolve_start(load_config(None, []))
    with pytest.raises(ConfigError, match="no trunk at"):
        resolve_start(load_config(None, [f"rl.trunk={tmp_path}", "rl.sft_step=10"]))
    with pytest.raises(ConfigError, match=r"this config's trunk \(seed 3\)"):
        resolve_start(load_config(None, [f"output_dir={tmp_path}", "sft.seeds=[3, 4]", "rl.sft_step=10"]))
    tdir = tmp_path / "trunk"
    (T.checkpoint_dir(tdir, 10)).mkdir(parents=True)
    (T.checkpoint_dir(tdir, 20)).mkdir(parents=True)
    (T.checkpoint_dir(tdir, 20) / "manifest.json").write_text(json.dumps({"step": 20}))
    with pytest.raises(ConfigError, match=r"finished steps: \[20\]"):
        resolve_start(load_config(None, [f"rl.trunk={tdir}", "rl.sft_step=10"]))
    with pytest.raises(ConfigError, match="rl.checkpoint"):
        resolve_start(load_config(None, [f"rl.checkpoint={tmp_path / 'nope'}"]))


def test_sft_step_alone_starts_from_this_configs_trunk(tmp_path):
    from raysweep.train.rl import resolve_start
    from raysweep.train.sft import config_trunk_dir

    base = [f"output_dir={tmp_path}", "model.name=tiny", "sft.seeds=[0, 1]", "sft.learning_rate=1e-4"]
    cfg = load_config(None, base + ["rl.sft_step=20", "rl.sft_seed=1", "task.reward=paper"])
    tdir = config_trunk_dir(cfg, 1)
    # the reward scheme is RL's business: the SFT trunk trained without it is the same trunk
    assert tdir == config_trunk_dir(load_config(None, base), 1) and tdir.name == "seed-1"
    cdir = T.checkpoint_dir(tdir, 20)
    cdir.mkdir(parents=True)
    (cdir / "manifest.json").write_text(json.dumps({"trunk_id": tdir.parent.name, "seed": 1, "step": 20}))
    start = resolve_start(cfg)
    assert start.path == cdir and start.identity() == {"trunk_id": tdir.parent.name, "seed": 1, "step": 20}
    other = load_config(None, base[:-1] + ["sft.learning_rate=2e-4", "rl.sft_step=20", "rl.sft_seed=1"])
    with pytest.raises(ConfigError, match="no trunk at"):
        resolve_start(other)  # another SFT recipe is another trunk


def test_run_id_follows_the_trajectory_not_the_bookkeeping(tiny_path, tmp_path):
    from raysweep.train.rl import plan_job

    base = [f"rl.checkpoint={tiny_path}", "model.name=tiny", f"output_dir={tmp_path}"]
    a = plan_job(load_config(None, base))
    assert a["run_id"] == plan_job(load_config(None, base + ["rl.eval_every=3", "rl.save_every=2"]))["run_id"]
    assert a["run_id"] != plan_job(load_config(None, base + ["rl.learning_rate=2e-6"]))["run_id"]
    assert a["run_id"] != plan_job(load_config(None, base + ["rl.algorithm=rloo"]))["run_id"]
    assert a["run_dir"] == str(tmp_path / "rl" / a["run_id"]) and a["start_manifest"] is None
    with pytest.raises(ConfigError, match="a grid is for sweeps"):
        plan_job(load_config(None, base + ["rl.grid={beta: [0.0, 0.1]}"]))


# ------------------------------------------------------------------------------------ integration


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "model.safetensors"))


TRUNK_STEP = 80  # measured: at temperature 1, ~55% of its answers parse (wrong cards), ~45% are malformed


@pytest.fixture(scope="module")
def tiny_trunk(tmp_path_factory):
    """A tiny SFT trunk that has learned the answer format (so sampled answers earn different paper rewards),
    trained by the SFT worker as a plain process (the path torchrun uses). Shares output_dir with the RL runs."""
    from raysweep import models
    from raysweep.train.sft import plan_jobs, write_job

    out = tmp_path_factory.mktemp("rl") / "out"
    cfg = load_config(None, ["model.name=tiny", "eval.n=16", f"sft.checkpoints=[0, {TRUNK_STEP}]",
                             "sft.learning_rate=3e-3", "sft.per_device_batch_size=16", "sft.num_examples=256",
                             "sft.warmup_steps=0", "sft.deepspeed.stage=0", f"output_dir={out}"])
    (job,) = plan_jobs(cfg, str(models.resolve("tiny")))
    path = write_job(job, cfg)
    done = subprocess.run([sys.executable, "-m", "raysweep.train.sft_worker", "--job", str(path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return out, Path(job["trunk_dir"])


def rl_overrides(out, tdir, *extra):
    return ["model.name=tiny", "eval.n=16", "task.reward=paper", f"rl.trunk={tdir}", f"rl.sft_step={TRUNK_STEP}",
            "rl.batch_size=4", "rl.num_generations=4", "rl.num_prompts=64", "rl.learning_rate=1e-3",
            f"output_dir={out}", *extra]


@pytest.mark.integration
@pytest.mark.parametrize("algorithm,stage,prompts", [("grpo", 2, "pool"), ("rloo", 3, "unseen")])
def test_rl_on_two_ray_workers_with_zero(algorithm, stage, prompts, tiny_trunk, monkeypatch):
    import torch
    from mlflow.tracking import MlflowClient

    from raysweep.train.rl import run_rl

    out, tdir = tiny_trunk
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = load_config(None, rl_overrides(out, tdir, f"rl.algorithm={algorithm}", f"rl.deepspeed.stage={stage}",
                                         "rl.num_workers=2", "rl.max_steps=4", "rl.eval_every=2",
                                         f"rl.prompts={prompts}"))
    rdir = run_rl(cfg)

    # the trained policy is kept in HF format, with its lineage, and differs from where it started
    final = rdir / "final"
    manifest = json.loads((final / "manifest.json").read_text())
    start = T.checkpoint_dir(tdir, TRUNK_STEP)
    assert manifest["algorithm"] == algorithm and manifest["step"] == 4
    assert manifest["parent"]["path"] == str(start) and manifest["parent"]["manifest"]["step"] == TRUNK_STEP
    assert json.loads((rdir / "parent.json").read_text())["manifest"]["trunk_id"] == tdir.parent.name
    w0, w1 = _weights(start), _weights(final)
    changed = [k for k in w1 if not torch.equal(w0[k], w1[k])]
    assert len(changed) >= len(w1) - 1, "RL should move (nearly) every tensor"
    # how far RL moved it against SFT's drift from the base (the trunk's step 0), measured when RL ended
    update = json.loads((rdir / "update.json").read_text())
    assert manifest["update"] == update and update["base"] == str(T.checkpoint_dir(tdir, 0))
    assert 0 < update["rl_update"] < update["sft_drift"] and update["ratio"] == pytest.approx(
        update["rl_update"] / update["sft_drift"]) and "angle_change" in update

    # step metrics and evaluations, in the results file
    results = list(T.read_results(rdir))
    train = [r for r in results if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    for r in train:
        assert -3 <= r["reward"] <= 5 and 0 < r["completions/mean_length"] <= 200 and r["kl"] >= 0
        assert r["verdict/correct"] + r["verdict/wrong_value"] + r["verdict/wrong_cards"] + r["verdict/malformed"] \
            == pytest.approx(1.0)
    assert any(r["kl"] > 0 for r in train[1:]), "the policy never moved away from its start"
    # a few scored completions per logged step, whose rewards are the verifier's
    samples = [r for r in results if r["kind"] == "samples"]
    assert [r["step"] for r in samples] == [1, 2, 3, 4] and all(len(r["samples"]) == 4 for r in samples)
    for s in (s for r in samples for s in r["samples"]):
        assert s["reward"] == score(s["cards"], s["completion"], "id", s["target"], "paper").reward
    if prompts == "unseen":  # no rollout poses a problem of the trunk's SFT examples
        from raysweep.tasks.protocol import task_of
        from raysweep.train.rl_prompts import trunk_sft_problems

        sft_problems = trunk_sft_problems(manifest["parent"]["manifest"])
        key = task_of(cfg.task).key
        assert not {key({"cards": s["cards"], "rule": "id", "target": s["target"]})
                    for r in samples for s in r["samples"]} & sft_problems
    evals = [r for r in results if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [0, 2, 4]
    assert evals[0]["reused_from"] == str(start)  # step 0 is the trunk checkpoint's own evaluation
    assert all(e["eval"][rule]["n"] == 16 for e in evals for rule in ("id", "ood"))
    # every evaluated hand, for paired comparisons (step 0's are in the trunk checkpoint's eval.json)
    assert sorted(p.name for p in (rdir / "evals").iterdir()) == ["step-2.json", "step-4.json"]
    hands = json.loads((rdir / "evals" / "step-4.json").read_text())
    assert {rule: len(h["records"]) for rule, h in hands.items()} == {"id": 16, "ood": 16}
    assert hands["ood"]["summary"]["accuracy"] == evals[-1]["eval"]["ood"]["accuracy"]

    # one MLflow run, tagged with its parent checkpoint and trunk run, with step-wise metrics
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    run = client.get_run((rdir / "mlflow_run_id").read_text().strip())
    tags = run.data.tags
    assert tags["raysweep.kind"] == "rl" and tags["raysweep.algorithm"] == algorithm
    assert tags["raysweep.parent_checkpoint"] == str(start) and tags["raysweep.parent_sft_step"] == str(TRUNK_STEP)
    assert tags["raysweep.parent_trunk_run"] == (tdir / "mlflow_run_id").read_text().strip()
    assert run.data.params["rl.algorithm"] == algorithm and run.data.params["rl.deepspeed.stage"] == str(stage)
    assert run.data.metrics["update/ratio"] == pytest.approx(update["ratio"])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/reward")] == [1, 2, 3, 4]
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "eval/ood/accuracy")) == [0, 2, 4]

    # a rerun finds the run finished and trains nothing
    assert run_rl(cfg) == rdir
    assert list(T.read_results(rdir)) == results


@pytest.mark.integration
def test_multi_attempt_rl_on_ray_kill_and_resume(tiny_trunk, tmp_path):
    """The paper's protocol in RL (task.attempts=2, through `raysweep rl` on a Ray Train worker): feedback tokens
    are masked out of the loss, the policy moves, and a killed run resumes without redoing anything finished."""
    import torch

    from raysweep.train.rl import plan_job

    out, tdir = tiny_trunk
    # This trunk's 2nd attempts are (nearly) all malformed, so the final attempt's reward alone has no spread in a
    # group and no gradient; the discounted return (the paper's) keeps attempt 1's spread (wrong_cards/malformed).
    overrides = rl_overrides(out, tdir, "rl.max_steps=6", "rl.eval_every=4", "rl.save_every=3",
                             "rl.deepspeed.stage=2", "tracking.enabled=false", "task.attempts=2",
                             "rl.episode_reward=discounted")
    rdir = Path(plan_job(load_config(None, overrides))["run_dir"])
    cmd = [sys.executable, "-m", "raysweep.cli", "rl", *overrides]
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 400
        while T.latest_trainer_checkpoint(rdir) is None:
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.time() < deadline, "no trainer checkpoint appeared"
            time.sleep(0.2)
        kill_tree(proc)  # the driver, its local Ray cluster and the training worker
    finally:
        kill_tree(proc)
    assert not (rdir / "final").exists(), "killed too late to test resume"
    before = list(T.read_results(rdir))
    saved = int(T.latest_trainer_checkpoint(rdir).name.split("-")[1])

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    results = list(T.read_results(rdir))
    assert results[: len(before)] == before  # nothing rewritten
    after = results[len(before):]
    (resume,) = [r for r in after if r["kind"] == "resume"]
    assert resume["from_step"] == saved >= 3
    trained_after = [r["step"] for r in after if r["kind"] == "train"]
    assert trained_after == list(range(saved + 1, 7)), "training restarts at the saved step, not at 0"
    # the step-0 evaluation is never redone; later ones are redone only if they came after the saved state
    assert [r["step"] for r in results if r["kind"] == "eval"].count(0) == 1
    latest = {r["step"]: r for r in results if r["kind"] == "eval"}
    assert sorted(latest) == [0, 4, 6]
    assert (rdir / "final" / "manifest.json").is_file()
    assert json.loads((rdir / "final" / "manifest.json").read_text())["eval"] == latest[6]["eval"]

    # episodes: TRL's loss-token count (completions/mean_length counts env_mask=1 tokens) is the model's own
    # tokens; feedback turns took tokens but none of them are in it
    train = {r["step"]: r for r in results if r["kind"] == "train"}
    assert sorted(train) == list(range(1, 7))
    for r in train.values():
        assert r["completions/mean_length"] == pytest.approx(r["attempts/model_tokens"], rel=1e-6)
        assert 1 <= r["attempts/mean"] <= 2
        assert r["attempts/solved_at_1"] + r["attempts/solved_at_2"] == pytest.approx(r["verdict/correct"])
    assert any(r["attempts/feedback_tokens"] > 0 for r in train.values())
    assert all(r["attempts/feedback_tokens"] > 0 for r in train.values() if r["attempts/mean"] > 1)
    # the stored episodes replay: every attempt's verdict is the verifier's, attempt 2 only after a failure
    for s in (s for r in results if r["kind"] == "samples" for s in r["samples"]):
        verdicts = [score(s["cards"], a["answer"], "id", s["target"], "paper").verdict for a in s["attempts"]]
        assert verdicts == [a["verdict"] for a in s["attempts"]] and len(verdicts) <= 2
        assert verdicts[-1] == "correct" or len(verdicts) == 2 or s["end"] == "budget"
        assert "correct" not in verdicts[:-1]
    # every evaluation is within 2 attempts, with accuracy at attempts 1 and 2 (non-decreasing)
    for e in latest.values():
        for rule in ("id", "ood"):
            at = [a["accuracy"] for a in e["eval"][rule]["accuracy_at_attempt"]]
            assert len(at) == 2 and at[0] <= at[1] == e["eval"][rule]["accuracy"]
    w0, w1 = _weights(T.checkpoint_dir(tdir, TRUNK_STEP)), _weights(rdir / "final")
    assert sum(not torch.equal(w0[k], w1[k]) for k in w1) >= len(w1) - 1, "RL should move (nearly) every tensor"


@pytest.mark.integration
def test_rollouts_after_a_mid_run_evaluation_continue_the_same_stream(tiny_trunk, tmp_path):
    """Evaluation reseeds torch's RNG; inside RL it runs under fork_rng, so the completions sampled at step 2
    are the same whether or not step 1 was followed by an evaluation (the RL worker as a plain process, the
    path torchrun uses)."""
    from raysweep.train.rl import plan_job, write_job

    _, tdir = tiny_trunk
    got = {}
    for every in (1, 0):
        out = tmp_path / f"every{every}"
        cfg = load_config(None, rl_overrides(out, tdir, "rl.max_steps=2", f"rl.eval_every={every}",
                                             "rl.deepspeed.stage=0", "rl.log_completions=16", "tracking.enabled=false"))
        job = plan_job(cfg)
        done = subprocess.run([sys.executable, "-m", "raysweep.train.rl_worker", "--job", str(write_job(job, cfg))],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-4000:]
        results = list(T.read_results(Path(job["run_dir"])))
        assert [r["step"] for r in results if r["kind"] == "eval"] == ([0, 1, 2] if every else [0, 2])
        got[every] = {r["step"]: [s["completion"] for s in r["samples"]] for r in results if r["kind"] == "samples"}
    assert got[1][1] == got[0][1] and len(got[1][2]) == 16
    assert got[1][2] == got[0][2], "the evaluation after step 1 changed the rollouts of step 2"


def test_before_after_shows_sets_only_some_steps_evaluated(tmp_path):
    from raysweep.train.rl import before_after

    e = {"accuracy": 0.5, "ci95": [0.4, 0.6], "n": 16}
    T.append_result(tmp_path, {"kind": "eval", "step": 0, "eval": {"id": e, "ood": e, "id-train": e}})  # the trunk's
    T.append_result(tmp_path, {"kind": "eval", "step": 5, "eval": {"id": e, "ood": e}})
    text = before_after(tmp_path)
    assert "id-train acc" in text and text.splitlines()[-1].rstrip().endswith("-")
