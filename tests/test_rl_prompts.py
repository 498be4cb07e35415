"""rl.prompts=unseen: the RL prompt pool keeps off every problem of the start trunk's SFT examples."""

import json

import pytest

from raysweep.config import ConfigError, load_config
from raysweep.tasks.protocol import task_of
from raysweep.train.rl_prompts import rl_prompts, trunk_sft_problems
from raysweep.train.sft_data import examples_hash, sft_examples

SMALL = ["task.num_cards=3", "task.targets=[12, 36]", "task.eval_fraction=0.5", "sft.num_examples=256"]


def _trunk(tmp_path, overrides=SMALL, seed=0):
    """A trunk directory as the SFT worker leaves it (its recorded config) and a checkpoint manifest naming it."""
    cfg = load_config(None, overrides)
    tdir = tmp_path / "trunks" / "t" / f"seed-{seed}"
    tdir.mkdir(parents=True)
    (tdir / "config.yaml").write_text(cfg.to_yaml())
    rows = sft_examples(cfg, seed)
    manifest = {"seed": seed, "step": 20, "trunk_dir": str(tdir), "data_hash": examples_hash(rows, 0.0)}
    return cfg, rows, manifest


def test_unseen_prompts_hold_none_of_the_trunks_sft_problems(tmp_path):
    cfg, rows, manifest = _trunk(tmp_path)
    task = task_of(cfg.task)
    seen = trunk_sft_problems(manifest)
    assert seen == {task.key(r) for r in rows.to_list()} and 100 < len(seen) <= 256
    pool = task.rl_dataset(512, 0).to_list()
    assert sum(task.key(r) in seen for r in pool) > 128  # the default pool is mostly SFT's own problems
    fresh = rl_prompts(task, 512, 0, seen)
    keys = [task.key(r) for r in fresh.to_list()]
    assert len(keys) == 512 and not seen.intersection(keys)
    assert len(set(keys)) > 50  # many distinct problems remain in the training pool
    # the same rows on any call, in the order of the unfiltered stream (a deterministic pool)
    assert keys == [task.key(r) for r in rl_prompts(task, 512, 0, seen).to_list()]
    stream = [task.key(r) for r in task.rl_dataset(4096, 0).to_list() if task.key(r) not in seen]
    assert keys == stream[:512]
    assert rl_prompts(task, 64, 0).to_list() == task.rl_dataset(64, 0).to_list()  # 'pool': unchanged


def test_unseen_prompts_refuse_what_cannot_be_checked(tmp_path):
    cfg, _, manifest = _trunk(tmp_path)
    with pytest.raises(ConfigError, match="start must be a trunk checkpoint"):
        trunk_sft_problems(None)
    with pytest.raises(ConfigError, match="hash to"):
        trunk_sft_problems(manifest | {"data_hash": "0" * 16})
    with pytest.raises(ConfigError, match="recorded config.*missing"):
        trunk_sft_problems(manifest | {"trunk_dir": str(tmp_path / "gone")})
    task = task_of(cfg.task)
    everything = {task.key(r) for r in task.rl_dataset(8192, 0).to_list()}
    with pytest.raises(ConfigError, match="lower rl.num_prompts"):
        rl_prompts(task, 16, 0, everything)


def test_prompts_setting_keeps_earlier_run_ids(tiny_path, tmp_path):
    from raysweep.train.rl import plan_job

    base = [f"rl.checkpoint={tiny_path}", "model.name=tiny", f"output_dir={tmp_path}"]
    cfg = load_config(None, base)
    assert "prompts" not in cfg.rl.identity()
    assert load_config(None, base + ["rl.prompts=unseen"]).rl.identity()["prompts"] == "unseen"
    with pytest.raises(ConfigError, match="rl.prompts=pool"):  # no trunk manifest: refused before any work
        plan_job(load_config(None, base + ["rl.prompts=unseen"]))
    json.dumps(plan_job(cfg))


def test_a_file_tasks_prompts_run_out_as_with_the_whole_pool(tmp_path):
    from test_files_task import _cfg, _data

    task = task_of(load_config(None, _cfg(_data(tmp_path))).task)
    rows = task.rl_dataset(1000, 0).to_list()  # the file's 20 RL rows
    seen = {task.key(r) for r in rows[:5]}
    fresh = rl_prompts(task, 1000, 0, seen)
    assert len(fresh) == 15 and not seen.intersection(map(task.key, fresh.to_list()))
    with pytest.raises(ConfigError, match="only 0 of 20"):
        rl_prompts(task, 10, 0, {task.key(r) for r in rows})
