"""The pre-training stage: which trunk it is (pure), and training it (``raysweep pretrain``, and the first
thing ``raysweep sft``/``run`` do when ``pretrain.steps`` > 0)."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import ValidationError

from raysweep.config import ConfigError, RaysweepConfig, task_loc
from raysweep.train import trunk as T
from raysweep.train.pretrain_config import PretrainConfig


def stage_config(cfg: RaysweepConfig) -> RaysweepConfig:
    """The config of the pre-training trunk: ``task``/``sft`` with the stage's overrides, one seed,
    checkpoints at ``pretrain.steps`` and ``pretrain.checkpoints``, no pre-training of its own."""
    pre = cfg.pretrain
    if not pre.steps:
        raise ConfigError("pretrain.steps is 0: this config has no pre-training stage")
    for key in ("seeds", "checkpoints"):
        if key in pre.sft:
            raise ConfigError(f"pretrain.sft.{key}: not settable; the stage has one seed (pretrain.seed) and one "
                              "checkpoint (pretrain.steps)")
    for key in ("split_seed", "eval_fraction", "rl_fraction"):
        if key in pre.task:
            raise ConfigError(f"pretrain.task.{key}: not settable; the stage shares the task's split, so no "
                              f"evaluation (or RL) problem is ever a pre-training problem (set task.{key} instead)")
    data = cfg.model_dump(mode="json")
    # a varied-rule stage draws its examples' targets from task.target_values; task.targets stays: the stage is
    # evaluated on the task's own evaluation problems
    data["task"] = {**data["task"], **pre.task}
    data["eval"] = {**data["eval"], **pre.eval}
    data["sft"] = {**data["sft"], **pre.sft, "seeds": [pre.seed],
                   "checkpoints": sorted({*pre.checkpoints, pre.steps})}
    data["pretrain"] = PretrainConfig().model_dump(mode="json")
    data["rl"] = {**data["rl"], "sft_step": None, "sft_seed": None, "trunk": None, "checkpoint": None, "grid": {}}
    data["sweep"] = {**data["sweep"], "rl_from": None}
    try:
        return RaysweepConfig.model_validate(data)
    except ValidationError as exc:
        msgs = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in task_loc(e["loc"]))
            where = f"pretrain.{loc}: " if loc.split(".")[0] in ("task", "sft", "eval") else (f"{loc}: " if loc else "")
            msgs.append(f"{where}{e['msg'].removeprefix('Value error, ')}")
        raise ConfigError("the pre-training stage's config is invalid:\n  " + "\n  ".join(msgs)) from None


def stage_trunk_dir(cfg: RaysweepConfig) -> Path:
    from raysweep.train.sft import config_trunk_dir

    return config_trunk_dir(stage_config(cfg), cfg.pretrain.seed)


def base_checkpoint(cfg: RaysweepConfig) -> Path:
    """The pre-trained base model's directory (the stage's checkpoint; it may not exist yet)."""
    return T.checkpoint_dir(stage_trunk_dir(cfg), cfg.pretrain.steps)


def base_model_path(cfg: RaysweepConfig, must_exist: bool = True) -> str:
    """Where the SFT trunks start: the pre-trained checkpoint, or ``model.name`` resolved."""
    if not cfg.pretrain.steps:
        from raysweep import models

        return str(models.resolve(cfg.model.name))
    path = base_checkpoint(cfg)
    if must_exist and cfg.pretrain.steps not in T.finished_steps(path.parent.parent):
        raise ConfigError(f"pretrain: the pre-trained base {path} is not finished; run `raysweep pretrain CONFIG` "
                          "(or `raysweep sft`/`raysweep run`, which train it first)")
    return str(path)


def run_pretrain(cfg: RaysweepConfig, parent_run_id: str | None = None) -> Path:
    """Train (or find) the pre-training trunk; return the base checkpoint the SFT trunks start from."""
    from raysweep.train.sft import run_sft

    stage = stage_config(cfg)
    print(f"[pretrain] {cfg.pretrain.steps} steps, overrides: task {cfg.pretrain.task or '{}'}, "
          f"sft {cfg.pretrain.sft or '{}'}, eval {cfg.pretrain.eval or '{}'}", file=sys.stderr)
    run_sft(stage, parent_run_id=parent_run_id)
    return Path(base_model_path(cfg))


def export_base(cfg: RaysweepConfig, base: Path, dest: Path, made_by: str) -> Path:
    """Ship the finished base ``base`` at ``dest`` (``raysweep pretrain --export``): its model files, the stage's
    resolved config (less ``output_dir``: where it trained is not what it is), every stage checkpoint's ID/OOD
    evaluation up to the base, and a manifest that :mod:`raysweep.shipped` checks."""
    import math

    import yaml
    from safetensors import safe_open

    from raysweep import shipped

    evals = [{"step": r["step"], **{rule: {k: e.get(k) for k in ("n", "accuracy", "ci95", "verdicts", "loss")}
                                    for rule, e in r["eval"].items()}}
             for r in T.read_results(stage_trunk_dir(cfg))
             if r.get("kind") == "checkpoint" and r["step"] <= cfg.pretrain.steps]
    with safe_open(str(base / "model.safetensors"), "pt") as f:
        parameters = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    config = stage_config(cfg).model_dump(mode="json", exclude={"output_dir"})
    manifest = T.read_manifest(base)
    return shipped.export(base, dest, made_by=made_by, config_yaml=yaml.safe_dump(config, sort_keys=False),
                          evals=evals, parameters=parameters, trunk_id=manifest["trunk_id"], step=manifest["step"],
                          earlier=shipped.earlier_stages(shipped.local_dir(cfg.model.name)))


def pretraining_stages(cfg: RaysweepConfig, earlier: tuple[str | Path, ...] = ()) -> list[tuple[str, RaysweepConfig]]:
    """(name, stage config) of every pre-training stage a sweep's base went through: the config's own ``pretrain``
    stage, the stage an exported base (``model.name``: shipped, or a directory ``raysweep pretrain --export`` wrote)
    recorded in its ``config.yaml``, the stages before it that its manifest lists (``earlier_stages``, newest
    first), and each config in ``earlier`` (stages a base exported before manifests listed them went through, e.g.
    ``jobs/analogue-stage1.yaml`` for ``analogue-base``; a config with a ``pretrain`` section counts as its stage)."""
    import yaml

    from raysweep import shipped
    from raysweep.config import load_config

    stages = [("pretrain", stage_config(cfg))] if cfg.pretrain.steps else []
    chain = shipped.earlier_stages(shipped.local_dir(cfg.model.name))
    for k, st in enumerate(reversed(chain)):
        name = f"{cfg.model.name} (its config.yaml)" if k == 0 else f"{cfg.model.name} (stage -{k}: {st['made_by']})"
        stages.append((name, RaysweepConfig.model_validate(yaml.safe_load(st["config"]))))
    for path in earlier:
        st = load_config(path)
        stages.append((str(path), stage_config(st) if st.pretrain.steps else st))
    return stages


def stage_problems(stage: RaysweepConfig) -> list:
    """The problem (values under the example's own rule, target) of every example of a GeneralPoints pre-training
    stage, in order."""
    from raysweep.tasks.generalpoints import deal_varied, problem_of

    return [problem_of(h, rule, t) for h, rule, t in
            deal_varied(stage.task, stage.sft.num_examples, stage.sft.seeds[0], "sft")]
