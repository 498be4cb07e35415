"""The analogue's building blocks: tiny shapes, short prompts, varied-rule data, the
pre-training stage's config and ids (and, integration, the stage trained on Ray before a trunk), RL cells from a
subset of SFT lengths."""

import json
from pathlib import Path

import pytest

from raysweep.config import ConfigError, load_config
from raysweep.models import ModelError, TinySpec
from raysweep.sweep.plan import plan_cells
from raysweep.tasks.datasets import rl_dataset, sft_dataset
from raysweep.tasks.generalpoints import TaskConfig, deal_varied, prompt_text, score
from raysweep.train import trunk as T
from raysweep.train.pretrain import base_model_path, stage_config
from raysweep.train.sft import config_trunk_id

PRE = ["model.name=tiny", "pretrain.steps=30", "pretrain.task={face_values: [1, 13]}",
       "pretrain.sft={learning_rate: 2e-3, num_examples: 64}"]


def test_tiny_spec_options_reshape_the_model_and_its_cache_key():
    assert TinySpec.parse("tiny") == TinySpec()
    spec = TinySpec.parse("tiny:hidden_size=64, num_hidden_layers=3")
    assert (spec.hidden_size, spec.num_hidden_layers) == (64, 3) and spec.key() != TinySpec().key()
    for bad, words in [("tiny:hidden=64", "fields"), ("tiny:hidden_size=x", "integer"),
                       ("tiny:hidden_size=0", "positive"), ("tiny:hidden_size=66", "multiple")]:
        with pytest.raises(ModelError, match=words):
            TinySpec.parse(bad)


def test_short_prompt_keeps_the_rule_wording_and_puts_the_cards_last():
    cfg = TaskConfig(num_cards=3, prompt_style="short")
    text = prompt_text(("J", "5", "2"), cfg.rule("ood"), cfg)
    assert text.startswith("Note that 'J', 'Q', and 'K' count as '11', '12', and '13' respectively.")
    assert text.endswith("Cards: ['J', '5', '2']") and len(text) < len(prompt_text(("J", "5", "2"), cfg.rule("ood"),
                                                                                   TaskConfig(num_cards=3))) / 4


def test_fields_added_later_leave_old_ids_alone():
    assert TaskConfig().identity() == TaskConfig().model_dump(mode="json", exclude={"prompt_style", "face_values", "face_tied",
                                                                                          "target_values", "targets", "attempts",
                                                                                          "feedback", "rl_fraction"}) | {"split": "problem"}
    assert "prompt_style" in TaskConfig(prompt_style="short").identity()
    assert TaskConfig(face_values=(1, 13)).identity()["face_values"] == [1, 13]


def test_varied_rules_are_stated_solvable_and_never_an_evaluated_rule():
    cfg = TaskConfig(num_cards=3, prompt_style="short", face_values=(9, 13))
    pairs = deal_varied(cfg, 300, seed=1, purpose="sft")
    assert pairs == deal_varied(cfg, 300, seed=1, purpose="sft")  # deterministic
    evaluated = [cfg.rule(r) for r in cfg.eval_rules]
    faces = {tuple(rule.value(r) for r in "JQK") for _, rule, _ in pairs}
    assert len(faces) > 50 and all(f != tuple(e.value(r) for r in "JQK") for f in faces for e in evaluated)
    assert all(9 <= v <= 13 for f in faces for v in f)
    ds = sft_dataset(cfg, 40, seed=1)
    assert all(target == cfg.target for _, _, target in pairs)
    for row, (hand, rule, _) in zip(ds, deal_varied(cfg, 40, seed=1, purpose="sft"), strict=True):
        prompt, answer = row["prompt"][0]["content"], row["completion"][0]["content"]
        assert row["cards"] == list(hand) and rule.text() in prompt
        assert score(row["cards"], answer, rule.values, cfg.target).correct  # the expert reads the stated values
    with pytest.raises(ValueError, match="face_values"):
        rl_dataset(cfg, 4, seed=0)
    tied = deal_varied(cfg.model_copy(update={"face_tied": 0.5}), 400, seed=1, purpose="sft")
    share = sum(len({rule.value(r) for r in "JQK"}) == 1 for _, rule, _ in tied) / len(tied)
    assert 0.4 < share < 0.6 and "count as '9'" in " ".join(rule.text() for _, rule, _ in tied)
    with pytest.raises(ValueError):
        TaskConfig(face_values=(5, 5))


def test_varied_targets_are_stated_reached_and_never_the_task_target():
    cfg = TaskConfig(num_cards=3, prompt_style="short", face_values=(1, 13), target_values=(12, 36))
    triples = deal_varied(cfg, 300, seed=2, purpose="sft")
    targets = [t for _, _, t in triples]
    assert len(set(targets)) > 15 and 24 not in targets and all(12 <= t <= 36 for t in targets)
    for row, (hand, rule, target) in zip(sft_dataset(cfg, 40, seed=2), triples[:40], strict=True):
        prompt, answer = row["prompt"][0]["content"], row["completion"][0]["content"]
        assert f"make {target}." in prompt and answer.endswith(f"={target}")
        assert score(row["cards"], answer, rule.values, target).correct
    with pytest.raises(ValueError, match="target_values"):
        TaskConfig(target_values=(12, 36))  # without face_values: the SFT/RL/eval target stays task.target
    assert TaskConfig(face_values=(1, 13)).identity() == TaskConfig(face_values=(1, 13), target_values=None).identity()


def test_pretrain_stage_config_and_lineage(tmp_path):
    cfg = load_config(None, PRE + [f"output_dir={tmp_path}", "sft.seeds=[0, 1]", "sft.checkpoints=[0, 10]", "sweep.rl_from=[10]",
                                   "rl.sft_step=10"])
    stage = stage_config(cfg)
    assert stage.task.face_values == (1, 13) and cfg.task.face_values is None
    assert stage.sft.learning_rate == 2e-3 and stage.sft.num_examples == 64
    assert stage.sft.seeds == (0,) and stage.sft.checkpoints == (30,) and stage.pretrain.steps == 0
    assert stage_config(load_config(None, PRE + ["pretrain.eval={n: 7}"])).eval.n == 7
    # earlier lengths of the stage: the same trunk, so a later pretrain.steps=10 finds its base trained
    curve = load_config(None, PRE + ["pretrain.checkpoints=[10, 20]", f"output_dir={tmp_path}"])
    assert stage_config(curve).sft.checkpoints == (10, 20, 30)
    shorter = load_config(None, PRE + ["pretrain.steps=10", f"output_dir={tmp_path}"])
    assert config_trunk_id(stage_config(curve)) == config_trunk_id(stage_config(shorter)) == config_trunk_id(stage)
    assert config_trunk_id(shorter) != config_trunk_id(cfg)  # while the SFT trunks on it are others
    # the SFT trunks start from the stage: their id names it, so another stage gives other trunks
    plain = load_config(None, ["model.name=tiny", f"output_dir={tmp_path}"])
    other = load_config(None, PRE[:-1] + ["pretrain.sft={learning_rate: 1e-3}", f"output_dir={tmp_path}"])
    ids = {config_trunk_id(c) for c in (cfg, plain, other, stage)}
    assert len(ids) == 4
    # the stage is evaluated on the task's own evaluation problems (its per-hand targets too), and shares its split
    ranged = load_config(None, PRE + [f"output_dir={tmp_path}", "task.num_cards=3", "task.targets=[12, 36]"])
    assert ranged.task.targets == (12, 36) and stage_config(ranged).task.targets == (12, 36)
    with pytest.raises(ConfigError, match="pretrain.task.eval_fraction: not settable"):
        load_config(None, PRE + ["pretrain.task={face_values: [1, 13], eval_fraction: 0.5}"])
    with pytest.raises(ConfigError, match="raysweep pretrain"):
        base_model_path(cfg)  # not trained yet: says how to make it
    ckpt = T.checkpoint_dir(T.trunk_dir(tmp_path, config_trunk_id(stage), 0), 30)
    ckpt.mkdir(parents=True)
    (ckpt / "manifest.json").write_text(json.dumps({"step": 30}))
    assert base_model_path(cfg) == str(ckpt)


@pytest.mark.parametrize("override, words", [
    ("pretrain.task={face_values: [3, 1]}", "pretrain.task.face_values"),
    ("pretrain.sft={checkpoints: [5]}", "pretrain.sft.checkpoints"),
    ("pretrain.sft={learning_rate: -1}", "pretrain.sft.learning_rate"),
    ("pretrain.eval={n: 0}", "pretrain.eval.n"),
    ("pretrain.checkpoints=[30]", "pretrain.checkpoints"),
])
def test_bad_pretrain_overrides_name_the_field(override, words):
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        load_config(None, PRE[:2] + [override])


def test_rl_cells_from_a_subset_of_lengths(tmp_path):
    base = [f"output_dir={tmp_path}", "sft.seeds=[0, 1]", "sft.checkpoints=[0, 10, 20, 40]"]
    cells = plan_cells(load_config(None, base + ["sweep.rl_from=[10, 40]"]))
    assert [(c.seed, c.sft_step) for c in cells] == [(0, 10), (0, 40), (1, 10), (1, 40)]
    assert len(plan_cells(load_config(None, base))) == 8
    with pytest.raises(ConfigError, match="sweep.rl_from"):
        load_config(None, base + ["sweep.rl_from=[15]"])


def test_an_evaluation_pool_too_small_fails_before_training(tmp_path):
    with pytest.raises(ConfigError, match=r"'id' evaluation pool holds \d+ distinct problems, fewer than eval.n=128"):
        load_config(None, [f"output_dir={tmp_path}", "task.num_cards=3", "eval.n=128", "tracking.enabled=false"])


@pytest.mark.integration
def test_pretrain_stage_then_trunk_on_ray(tmp_path):
    """`raysweep sft` with a pre-training stage: the stage is trained first (an ordinary trunk on Ray Train),
    its checkpoint is the base every trunk starts from (step 0 = the pre-trained weights, not the random
    init), and a rerun trains nothing."""
    import torch
    from safetensors.torch import load_file

    from raysweep.models import resolve
    from raysweep.train.sft import run_sft

    cfg = load_config(None, [
        "model.name=tiny", "task.num_cards=3", "task.prompt_style=short", "task.eval_fraction=0.5",
        "eval.n=8", "eval.max_new_tokens=24", "sft.per_device_batch_size=8", "sft.num_examples=32",
        "sft.learning_rate=3e-3", "sft.warmup_steps=0", "sft.num_workers=1", "sft.checkpoints=[0, 2]",
        "pretrain.steps=3", "pretrain.task={face_values: [1, 13], face_tied: 0.5}",
        "pretrain.sft={num_examples: 48}", "tracking.enabled=false", f"output_dir={tmp_path / 'out'}"])
    (tdir,) = run_sft(cfg)
    base = base_model_path(cfg)
    assert T.read_manifest(T.checkpoint_dir(Path(base).parent.parent, 3))["step"] == 3

    def weights(path):
        return load_file(str(Path(path) / "model.safetensors"))

    init, pre, step0, step2 = (weights(p) for p in (resolve("tiny"), base, T.checkpoint_dir(tdir, 0),
                                                     T.checkpoint_dir(tdir, 2)))
    # (a tied lm_head is saved once or twice depending on who saved the checkpoint: compare what both hold)
    assert set(step0) <= set(pre) and all(torch.equal(pre[k], step0[k]) for k in step0)  # the trunk starts from the stage
    shared = set(init) & set(pre)
    assert sum(not torch.equal(init[k], pre[k]) for k in shared) >= len(shared) - 1  # which trained
    assert sum(not torch.equal(step0[k], step2[k]) for k in step0) >= len(step0) - 1  # and so did SFT
    stage = [r for r in T.read_results(Path(base).parent.parent) if r["kind"] == "train"]
    assert [r["step"] for r in stage] == [1, 2, 3] and all(0 < r["loss"] < 10 for r in stage)
    results = list(T.read_results(tdir))
    assert run_sft(cfg) == [tdir] and list(T.read_results(tdir)) == results  # nothing retrained
    # shipped as a base (`raysweep pretrain --export`): the same weights, checked on load
    from raysweep.train.pretrain import export_base

    ship = export_base(cfg, Path(base), tmp_path / "ship", made_by="raysweep pretrain ... --export ship")
    assert resolve(str(ship)) == ship.resolve() and weights(ship).keys() == weights(base).keys()
    manifest = json.loads((ship / "raysweep-base.json").read_text())
    assert manifest["step"] == 3 and manifest["parameters"] > 1e5 and [e["step"] for e in manifest["evals"]] == [3]
    with open(ship / "model.safetensors", "r+b") as f:  # one byte changed
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    with pytest.raises(ModelError, match=r"model.safetensors does not match its manifest's sha256"):
        resolve(str(ship))
