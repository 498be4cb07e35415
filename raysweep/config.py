"""Typed configuration: YAML files plus ``key=value`` overrides, validated before anything runs.

``load_config(path, ["eval.n=256", "task.num_cards=3"])`` reads the YAML (optional), applies the
overrides (dotted keys; values parsed as YAML, so ``[0, 10]``, ``true`` and ``1e-5`` work), and validates
the result. Unknown keys and bad values raise :class:`ConfigError` with one line per problem naming the
field and what is allowed. The resolved config (``to_yaml``) is the record of a run.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic_core import PydanticUndefined
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from raysweep.boundary.boundary_config import BoundaryConfig
from raysweep.evaluate import EvalConfig
from raysweep.spectral.spectral_config import SpectralConfig
from raysweep.tasks.custom import TAGS as TASK_TAGS
from raysweep.tasks.custom import ClassTaskConfig, TaskSection
from raysweep.tasks.files import FilesTaskConfig
from raysweep.tasks.generalpoints import TaskConfig
from raysweep.tasks.protocol import task_of
from raysweep.tracking import TrackingConfig
from raysweep.sweep.sweep_config import SweepConfig
from raysweep.train.pretrain_config import PretrainConfig
from raysweep.train.rl_config import RLConfig
from raysweep.train.sft_config import SFTConfig


class ConfigError(ValueError):
    """Invalid configuration; the message names each bad field and the fix."""


class ModelConfig(BaseModel):
    """Which model, and how to place it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("smollm2-135m", description="tiny | smollm2-135m | a local HF directory | a hub id.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto: bf16 on GPUs that support it, fp32 on CPU.")
    device: str | None = Field(None, description="cpu, cuda, cuda:1 ...; default: cuda if present, else cpu.")


class RaysweepConfig(BaseModel):
    """The whole configuration (sections grow with the stages: task, model, eval, ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelConfig = Field(default_factory=ModelConfig, description="The base model.")
    task: TaskSection = Field(default_factory=TaskConfig, description="The task: GeneralPoints (the default), "
                              "task.kind=files (your data files) or task.kind=package.module:ClassName (your class); "
                              "see docs/tasks.md.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="ID/OOD evaluation.")
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig,
                                     description="An optional stage before SFT that prepares the base model.")
    sft: SFTConfig = Field(default_factory=SFTConfig, description="The SFT trunk(s).")
    rl: RLConfig = Field(default_factory=RLConfig, description="The RL stage (GRPO/RLOO from one SFT checkpoint).")
    sweep: SweepConfig = Field(default_factory=SweepConfig, description="The sweep (`raysweep run`).")
    boundary: BoundaryConfig = Field(default_factory=BoundaryConfig,
                                     description="The recovery window (`raysweep report`, `raysweep boundary`).")
    spectral: SpectralConfig = Field(default_factory=SpectralConfig,
                                     description="Spectral analysis and edits (`raysweep spectral`).")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="MLflow.")
    output_dir: str = Field("outputs", description="Where results are written (relative to the working directory).")

    @field_validator("task", mode="before")
    @classmethod
    def _default_kind(cls, v):
        if isinstance(v, dict) and v.get("kind") == "generalpoints":  # the default, spelled out
            v = {k: x for k, x in v.items() if k != "kind"}
        return v

    @model_validator(mode="after")
    def _boundary_rule_is_evaluated(self) -> "RaysweepConfig":
        sets = task_of(self.task).eval_sets
        if self.boundary.rule not in sets:
            where = "task.eval_rules" if self.task.kind == "generalpoints" else "the evaluation sets (task.eval)"
            raise ValueError(f"boundary.rule: {self.boundary.rule!r} is not evaluated; use one of {where} "
                             f"{list(sets)}")
        return self

    @model_validator(mode="after")
    def _generalpoints_features(self) -> "RaysweepConfig":
        if self.task.kind == "generalpoints":
            self._check_rl_rules()
            return self
        if any(self.rl.rule_lists()):
            raise ValueError(f"rl.rules: stated rules are a GeneralPoints feature; task.kind={self.task.kind!r} has "
                             "none: leave rl.rules out (RL prompts come from the task's rl_dataset)")
        if self.sft.revision_share:
            raise ValueError(f"sft.revision_share: revision episodes are a GeneralPoints feature (its "
                             f"verifier's feedback); task.kind={self.task.kind!r} has none: leave it at 0")
        if task_of(self.task).attempts != 1:
            raise ValueError(f"task.kind={self.task.kind!r}: multi-attempt episodes are a GeneralPoints feature "
                             "(task.attempts); this task's attempts must be 1")
        return self

    def _check_rl_rules(self) -> None:
        task = self.task
        evaluated = dict.fromkeys((task.train_rule, *task.eval_rules))
        for rules in self.rl.rule_lists():
            for name in rules:
                if name == "varied":
                    continue
                if name in evaluated:
                    raise ValueError(f"rl.rules: {name!r} is an evaluated rule (the training rule or "
                                     f"task.eval_rules {list(task.eval_rules)}); RL under stated rules practises "
                                     "reading on rules no evaluation uses: name others (task.rules) or 'varied'")
                if name not in task.rules:
                    raise ValueError(f"rl.rules: unknown rule {name!r}; define it under task.rules (rank -> value), "
                                     f"or use 'varied'; task.rules has {sorted(task.rules)}")
                if not task.distinguishing_ranks(task.rule(name)):
                    raise ValueError(f"rl.rules: {name!r} counts every rank of task.ranks as the training rule does "
                                     "(nothing to read); give it other face values")

    @model_validator(mode="after")
    def _sft_step_is_a_length_of_this_trunk(self) -> "RaysweepConfig":
        rl = self.rl
        if rl.sft_step is not None and not rl.trunk and rl.sft_step not in self.sft.checkpoints:
            raise ValueError(f"rl.sft_step: {rl.sft_step} is not an SFT length of this config's trunk; use one of "
                             f"sft.checkpoints {list(self.sft.checkpoints)}, or add it there (or name another "
                             "trunk with rl.trunk)")
        return self

    @model_validator(mode="after")
    def _pretrain_stage_is_valid(self) -> "RaysweepConfig":
        if self.pretrain.steps:
            from raysweep.train.pretrain import stage_config

            stage_config(self)  # a bad override fails at load time, naming pretrain.task.* / pretrain.sft.*
        return self

    @model_validator(mode="after")
    def _reward_scale_can_learn(self) -> "RaysweepConfig":
        rl = self.rl
        if (getattr(self.task, "reward", None) == "paper" and "grpo" in rl.grid.get("algorithm", [rl.algorithm])
                and "group" in rl.grid.get("scale_rewards", [rl.scale_rewards])):
            raise ValueError("rl.scale_rewards=group with task.reward=paper: per-group scaling gives a group with no "
                             "correct answer (-1 wrong value vs -2 wrong numbers) advantages as large as a correct "
                             "answer's, so the update is spent ranking wrong answers; use rl.scale_rewards=batch "
                             "(or none), or task.reward=binary")
        return self

    @model_validator(mode="after")
    def _episodes_can_train(self) -> "RaysweepConfig":
        rl = self.rl
        modes = rl.grid.get("episode_reward", [rl.episode_reward])
        attempts = task_of(self.task).attempts
        if attempts > 1 and "rloo" in rl.grid.get("algorithm", [rl.algorithm]):
            raise ValueError(f"rl.algorithm=rloo with task.attempts={attempts}: TRL 1.16's RLOOTrainer has no "
                             "rollout_func (multi-attempt episodes with masked feedback are GRPOTrainer's only); use "
                             "rl.algorithm=grpo, or task.attempts=1 for RLOO")
        if attempts == 1 and "discounted" in modes:
            raise ValueError("rl.episode_reward=discounted with task.attempts=1: an episode of one attempt has "
                             "nothing to discount; set task.attempts > 1 (the paper: 5) or leave rl.episode_reward "
                             "at final")
        if "discounted" not in modes and ("gamma" in rl.grid or rl.gamma != 0.9):
            raise ValueError("rl.gamma is the discount of rl.episode_reward=discounted; with final it has no effect: "
                             "set rl.episode_reward=discounted or leave rl.gamma out")
        return self

    @model_validator(mode="after")
    def _eval_pools_hold_eval_n(self) -> "RaysweepConfig":
        task_of(self.task).check(self.eval.n)  # before any work: eval.n distinct problems per evaluation set
        return self

    @model_validator(mode="after")
    def _rl_from_are_lengths(self) -> "RaysweepConfig":
        extra = sorted(set(self.sweep.rl_from or ()) - set(self.sft.checkpoints))
        if extra:
            raise ValueError(f"sweep.rl_from: {extra} are not SFT lengths; use lengths from sft.checkpoints "
                             f"{list(self.sft.checkpoints)}")
        if self.sweep.rl_from is not None and not self.sweep.rl_from:
            raise ValueError("sweep.rl_from: give at least one SFT length, or leave it unset for every length")
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(json.loads(self.model_dump_json()), sort_keys=False)

    def digest(self) -> str:
        """A short hash of the resolved config (stable across key order)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]


C = TypeVar("C", bound=BaseModel)
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _numbers(value: Any) -> Any:
    """YAML 1.1 reads ``1e-5`` as a string; researchers mean the number (also inside lists and mappings)."""
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        return float(value)
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    return value


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[1, 2]"]`` -> ``{"a": {"b": 1}, "c": [1, 2]}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. eval.n=256")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r}: empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({exc.__class__.__name__})") from None
        value = _numbers(value)
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is set both as a value and a section")
        node[parts[-1]] = value
    return out


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def task_loc(loc: tuple) -> tuple:
    """An error's location without the task kind's tag pydantic puts in it (``task.files.sft`` -> ``task.sft``)."""
    loc = tuple(loc)
    i = loc.index("task") if "task" in loc else -1
    if i >= 0 and len(loc) > i + 1 and loc[i + 1] in TASK_TAGS:
        return loc[:i + 1] + loc[i + 2:]
    return loc


def _explain(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in task_loc(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see `raysweep config --fields`)"
        elif "input" in err and err["type"] not in ("missing",) and where and not isinstance(err["input"], dict):
            msg = f"{msg} (got {err['input']!r})"
        if where and msg.startswith(where):  # the validator named the field (e.g. rl.grid.learning_rate) already
            where = ""
        lines.append(f"  {where}: {msg}" if where else f"  {msg}")
    return "invalid config:\n" + "\n".join(lines)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: where and what, e.g. ``line 3, column 9: mapping values are not allowed here``."""
    mark = getattr(exc, "problem_mark", None)
    what = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {what}" if mark is not None else what


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                cls: type[C] = RaysweepConfig) -> C:  # type: ignore[assignment]
    """Read, override and validate a config; raise :class:`ConfigError` naming every bad field."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except UnicodeDecodeError:
            raise ConfigError(f"config file {p} is not UTF-8 text; give a YAML file") from None
        except OSError as exc:
            raise ConfigError(f"config file {p} cannot be read ({exc.strerror or exc})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {p} is not valid YAML ({_yaml_problem(exc)})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p}: the top level must be a mapping of sections")
    data = deep_merge(data, parse_overrides(overrides or []))
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None


def describe_fields(cls: type[BaseModel] = RaysweepConfig, prefix: str = "") -> list[str]:
    """One line per field: dotted name, default and help text (for ``raysweep config --fields``)."""
    lines = []
    for name, f in cls.model_fields.items():
        ann = f.annotation
        if cls is RaysweepConfig and name == "task":
            lines.append(f"{prefix}{name}:  {f.description or ''}")
            for kind, model in (("generalpoints (the default)", TaskConfig), ("files", FilesTaskConfig),
                                ("package.module:ClassName", ClassTaskConfig)):
                lines.append(f"{prefix}{name} (kind: {kind}):")
                lines.extend(describe_fields(model, prefix + name + "."))
            continue
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            lines.append(f"{prefix}{name}:  {f.description or ''}")
            lines.extend(describe_fields(ann, prefix + name + "."))
        else:
            default = f.default_factory() if f.default_factory is not None else f.default
            default = "(required)" if default is PydanticUndefined else default
            lines.append(f"  {prefix}{name} = {default!r}  -- {f.description or ''}")
    return lines
