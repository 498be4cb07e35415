"""Sweep planning (pure): grid expansion, trial names, cell configs, lineage, resource plan."""

import pytest

from raysweep.config import ConfigError, load_config
from raysweep.sweep.plan import Cell, cell_config, expand_grid, lineage, plan_cells, resource_plan


def test_expand_grid_is_the_ordered_product():
    assert expand_grid({}) == [{}]
    assert expand_grid({"a": [1, 2], "b": ["x", "y", "z"]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"},
        {"a": 2, "b": "x"}, {"a": 2, "b": "y"}, {"a": 2, "b": "z"}]


def test_cells_cover_seeds_x_lengths_x_grid_with_unique_stable_names(tmp_path):
    cfg = load_config(None, [f"output_dir={tmp_path}", "sft.seeds=[0, 1]", "sft.checkpoints=[0, 20, 40]",
                             "rl.grid={learning_rate: [1e-6, 3e-6], algorithm: [grpo, rloo]}"])
    cells = plan_cells(cfg)
    assert len(cells) == 2 * 3 * 4
    assert cells[0] == Cell(0, 0, (("learning_rate", 1e-6), ("algorithm", "grpo")))
    assert cells[-1] == Cell(1, 40, (("learning_rate", 3e-6), ("algorithm", "rloo")))
    names = [c.name for c in cells]
    assert len(set(names)) == len(names)
    assert cells[0].name == "seed0-sft0-learning_rate=1e-06-algorithm=grpo"
    assert plan_cells(cfg) == cells  # deterministic
    # the same flat parameter names in every trial, so MLflow's compare view lines them up
    assert {tuple(sorted(c.params())) for c in cells} == {
        ("rl.algorithm", "rl.learning_rate", "rl.sft_step", "sft.seed")}


def test_cell_config_applies_the_cell_and_names_its_start(tmp_path):
    cfg = load_config(None, [f"output_dir={tmp_path}", "model.name=tiny", "sft.seeds=[3]", "sft.checkpoints=[0, 8]",
                             "rl.grid={beta: [0.0, 0.1]}", "rl.learning_rate=2e-6"])
    cell = plan_cells(cfg)[-1]
    c = cell_config(cfg, cell)
    assert (c.rl.beta, c.rl.learning_rate, c.rl.sft_step, c.rl.sft_seed, c.rl.grid) == (0.1, 2e-6, 8, 3, {})
    assert c.sft == cfg.sft and c.task == cfg.task
    lin = lineage(cfg, cell)
    assert lin["checkpoint"].endswith("seed-3/checkpoints/step-8") and lin["trunk_dir"].startswith(str(tmp_path))
    # the RL stage resolves the same checkpoint from the cell's config
    from raysweep.train.rl import resolve_start

    with pytest.raises(ConfigError, match=r"no trunk at .*seed-3"):
        resolve_start(c)


def test_a_grid_combination_that_cannot_run_fails_before_anything_starts():
    # each value is valid alone; 3 prompts x 3 generations cannot split over 2 workers
    cfg = load_config(None, ["rl.num_workers=2", "rl.batch_size=4", "rl.grid={num_generations: [4, 3], batch_size: [2, 3]}"])
    with pytest.raises(ConfigError, match=r"combination \{'num_generations': 3, 'batch_size': 3\}.*split evenly"):
        plan_cells(cfg)
    with pytest.raises(ConfigError, match=r"rl.grid.sft_step: not a sweepable"):
        load_config(None, ["rl.grid={sft_step: [10]}"])
    with pytest.raises(ConfigError, match=r"rl.grid.temperature\[1\] = -1"):
        load_config(None, ["rl.grid={temperature: [0.7, -1]}"])
    with pytest.raises(ConfigError, match="rl.grid.beta: Input should be a valid list"):
        load_config(None, ["rl.grid={beta: 0.1}"])
    with pytest.raises(ConfigError, match="non-empty list"):
        load_config(None, ["rl.grid={beta: []}"])
    assert load_config(None, ["rl.grid={learning_rate: [1e-6]}"]).rl.grid == {"learning_rate": [1e-6]}  # a number


def test_resource_plan_fits_trials_to_the_cluster_node_by_node():
    rl = load_config(None, ["rl.num_workers=2", "rl.cpus_per_worker=2"]).rl
    gpu_node = {"CPU": 16.0, "GPU": 4.0}
    p = resource_plan(rl, [gpu_node], n_trials=12, use_gpu=True)
    assert p.bundles == ({"CPU": 0.0}, {"CPU": 2.0, "GPU": 1.0}, {"CPU": 2.0, "GPU": 1.0})
    assert p.per_trial == {"CPU": 4.0, "GPU": 2.0}
    assert (p.max_concurrent, p.limited_by) == (2, "cluster")
    # a CPU head adds no GPU slots; two GPU nodes double them
    assert resource_plan(rl, [{"CPU": 8.0}, gpu_node, gpu_node], 12, use_gpu=True).max_concurrent == 4
    p = resource_plan(rl, [{"CPU": 16.0}], n_trials=12, use_gpu=False, max_concurrent=3)
    assert (p.max_concurrent, p.limited_by) == (3, "max_concurrent_trials")
    p = resource_plan(rl, [{"CPU": 64.0}], n_trials=2, use_gpu=False)
    assert (p.max_concurrent, p.limited_by) == (2, "trials")
    # 4 CPUs in total, but no node holds a 2-CPU worker: the trial could never be placed
    with pytest.raises(ConfigError, match=r"workers of 2 CPU each .* hold 0 such worker"):
        resource_plan(rl, [{"CPU": 1.0}] * 4, n_trials=1, use_gpu=False)
    with pytest.raises(ConfigError, match=r"1 GPU each .* hold 1 such worker"):
        resource_plan(rl, [{"CPU": 8.0, "GPU": 1.0}], n_trials=1, use_gpu=True)
    one = load_config(None, ["rl.num_workers=1", "rl.cpus_per_worker=1"]).rl
    assert resource_plan(one, [{"CPU": 1.0}, {"CPU": 1.0}], 4, use_gpu=False).max_concurrent == 2


def test_shipped_job_configs_load_and_plan():
    from pathlib import Path

    jobs = Path(__file__).resolve().parents[1] / "jobs"
    quick = load_config(jobs / "quick.yaml")
    assert [c.name for c in plan_cells(quick)] == ["seed0-sft20", "seed0-sft160"]
    assert quick.model.name == "analogue-base" and quick.pretrain.steps == 0
    smol = load_config(jobs / "smollm2.yaml")
    assert smol.rl.sft_step == 80 and smol.model.name == "smollm2-135m" and smol.rl.grid == {}


def test_paper_scale_gpu_job_fits_the_cluster_yaml_workers():
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "jobs" / "qwen2.5-1.5b.yaml")
    cells = plan_cells(cfg)
    assert len(cells) == 2 * 8 * 2 and cfg.rl.use_gpu and cfg.sft.use_gpu
    assert {cfg.sft.deepspeed.stage, cfg.rl.deepspeed.stage} == {2, 3}
    # on the cluster.yaml of this repository: a CPU head and g5.12xlarge nodes (4 GPUs, 48 vCPUs each)
    cluster = yaml.safe_load((root / "cluster.yaml").read_text())
    assert cluster["available_node_types"]["head"]["resources"] == {"CPU": 0}
    g5 = {"CPU": 48.0, "GPU": 4.0}
    plan = resource_plan(cfg.rl, [{"CPU": 0.0}] + [g5] * cluster["max_workers"], len(cells), use_gpu=True)
    assert plan.per_trial == {"CPU": 32.0, "GPU": 4.0}
    assert (plan.max_concurrent, plan.limited_by) == (cluster["max_workers"], "cluster")
    assert cfg.output_dir.startswith("/mnt/shared")  # the EFS mount every node sees


def test_driver_runtime_env_leaves_a_submitted_jobs_own_settings_alone():
    from raysweep.train.launch import RUNTIME_ENV, driver_runtime_env

    assert driver_runtime_env(None) == RUNTIME_ENV
    job = {"working_dir": "gcs://pkg.zip", "env_vars": {"TOKENIZERS_PARALLELISM": "true"},
           "worker_process_setup_hook": "my.hook"}
    assert driver_runtime_env(job) == {"env_vars": {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}}


def test_trial_run_names_carry_the_grid_settings():
    from raysweep.sweep.plan import Cell

    assert Cell(0, 20, (("learning_rate", 1e-4),)).run_name("grpo") == "rl/grpo/seed=0/sft=20/learning_rate=0.0001"
    assert Cell(1, 5, (("algorithm", "rloo"), ("beta", 0.0))).run_name("grpo") == "rl/rloo/seed=1/sft=5/beta=0"
