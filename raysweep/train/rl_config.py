"""Configuration of the RL stage: GRPO or RLOO from one SFT checkpoint, rewarded by the exact verifier."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from raysweep.train.workers_config import WorkersConfig


NOT_GRIDDABLE = frozenset({"grid", "checkpoint", "trunk", "sft_step", "sft_seed"})
"""RL fields a sweep grid may not vary: the start of each cell comes from the SFT lengths and seeds."""
BOOKKEEPING = frozenset({"eval_every", "save_every", "logging_steps", "log_completions"})
"""RL fields that do not shape the trajectory (not part of a run's id): a grid over them would make cells that are
one and the same run."""

LATER_FIELDS = {"episode_reward": "final", "gamma": 0.9, "prompts": "pool", "rules": [], "face_values": [1, 13],
                "face_tied": 0.0}
"""RL fields added after runs were first made, with the default that leaves a run's id unchanged."""


class RLConfig(WorkersConfig):
    """One RL job: which SFT checkpoint it starts from, the algorithm and its settings.

    The start is named explicitly: ``sft_step``, one SFT length of a trunk (``trunk``, a trunk directory,
    or by default the trunk this config's ``model``/``task``/``sft`` sections define, seed ``sft_seed``),
    or ``checkpoint`` (any checkpoint directory or model spec, with or without a raysweep manifest). ``batch_size`` counts prompts per optimizer step over all workers; each prompt gets
    ``num_generations`` completions, so a step scores ``batch_size * num_generations`` answers.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    checkpoint: str | None = Field(
        None, description="Start from this checkpoint directory or model spec (instead of a trunk + sft_step).")
    sft_step: int | None = Field(None, ge=0, description="Start from this SFT length (a finished checkpoint) of a trunk:")
    trunk: str | None = Field(
        None, description="... this trunk directory (<output_dir>/trunks/<id>/seed-<s>); default: the trunk this "
                          "config's model/task/sft sections define, seed sft_seed.")
    sft_seed: int | None = Field(None, description="Seed of that default trunk; default: the first of sft.seeds.")
    algorithm: Literal["grpo", "rloo"] = Field("grpo", description="grpo (TRL GRPOTrainer) or rloo (TRL RLOOTrainer).")
    learning_rate: float = Field(1e-6, gt=0, description="Constant learning rate after warm-up.")
    beta: float = Field(0.04, ge=0, description="KL coefficient against the starting checkpoint (0: no reference model).")
    num_generations: int = Field(8, ge=2, description="Completions sampled per prompt (the group).")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the rollouts.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass of the rollouts.")
    max_completion_length: int | None = Field(
        None, ge=1, description="Rollout token budget; default: as evaluation (1.5x the longest expert answer, +8).")
    max_steps: int = Field(50, ge=1, description="Optimizer steps.")
    batch_size: int = Field(4, ge=1, description="Prompts per optimizer step, over all workers.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-steps per optimizer step (splits each step's batch).")
    warmup_steps: int | None = Field(
        None, ge=0, description="Linear warm-up steps; default: 10% of max_steps (rounded down).")
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "batch", description="How advantages are scaled: 'group' (by each group's reward std: GRPO's original, "
        "gives a group with no correct answer advantages as large as a correct answer's), 'batch' (by the whole "
        "batch's std) or 'none'. RLOO: 'batch' normalises advantages per generation batch, 'none' leaves them.")
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"] = Field(
        "dapo", description="GRPO's loss aggregation (TRL's loss_type; RLOO has one loss and takes only the default).")
    num_iterations: int = Field(
        1, ge=1, description="Optimisation passes over each batch of rollouts (TRL's mu). With 1 the policy ratio "
        "is always 1, so epsilon/epsilon_high have no effect.")
    epsilon: float = Field(0.2, gt=0, description="Lower clipping range of the policy ratio (needs num_iterations > 1).")
    epsilon_high: float | None = Field(
        None, gt=0, description="Upper clipping range (DAPO's clip-higher; default: epsilon; needs num_iterations > 1).")
    mask_truncated_completions: bool = Field(
        False, description="Leave completions cut off at max_completion_length out of the loss (DAPO). Off: a "
        "rambling answer is scored as malformed, which is the signal a short-answer task wants.")
    log_completions: int = Field(
        4, ge=0, description="Scored completions kept per logging step (results.jsonl, kind 'samples': the "
        "hand, what was sampled, its verdict and reward), so rewards can be audited; 0: none.")
    episode_reward: Literal["final", "discounted"] = Field(
        "final", description="With task.attempts > 1: an episode's reward is its last attempt's ('final') or the "
        "sum of every attempt's reward discounted by rl.gamma per attempt ('discounted', the paper's return).")
    gamma: float = Field(
        0.9, gt=0, le=1, description="Discount per attempt for rl.episode_reward=discounted (the paper: 0.9); must "
        "be in (0, 1].")
    num_prompts: int = Field(1000, ge=1, description="Size of the RL prompt pool (training-rule hands from the training pool).")
    prompts: Literal["pool", "unseen"] = Field(
        "pool", description="Where RL prompts come from: 'pool', the training pool (the trunk's own SFT problems "
        "included); 'unseen', the training pool less every problem of the trunk's SFT examples, so RL practises on "
        "problems SFT never showed (needs a start with a trunk manifest).")
    rules: tuple[str, ...] = Field(
        (), description="Stated rules of the RL prompts, dealt in turn (GeneralPoints; a positive control: RL on rules "
        "that must be read, never the evaluation's): names of task.rules (not an evaluated rule) and/or 'varied' (a "
        "fresh face-card rule per prompt, J, Q and K drawn from rl.face_values; a draw that states an evaluated "
        "rule is redrawn). The split stays by the training rule's problem: each hand is a "
        "training-rule RL hand and poses no evaluation problem under its stated rule. []: the training rule.")
    face_values: tuple[int, int] = Field(
        (1, 13), description="With rl.rules 'varied': the range [low, high] each face card's value is drawn from.")
    face_tied: float = Field(
        0.0, ge=0.0, le=1.0, description="With rl.rules 'varied': the share of rules tying J, Q and K to one value "
        "(the ID rule's phrasing, \"count as 'v'\"); the others draw each card's value on its own.")
    seed: int = Field(0, description="Seed of the prompt pool, its order and the rollouts.")
    eval_every: int = Field(10, ge=0, description="Evaluate ID/OOD every this many steps (and at 0 and the end); 0: only 0 and end.")
    save_every: int = Field(10, ge=1, description="Save the resumable trainer state every this many steps.")
    logging_steps: int = Field(1, ge=1, description="Step-metric logging interval.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations (saves memory, costs time).")
    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="Sweep only: lists of values for any rl.* setting, e.g. {learning_rate: "
                                          "[1e-6, 3e-6]}; `raysweep run` trains every combination from every SFT "
                                          "length and seed.")

    @field_validator("grid")
    @classmethod
    def _grid(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if key in BOOKKEEPING:
                raise ValueError(f"rl.grid.{key}: bookkeeping, not a setting of the RL trajectory (the cells would be "
                                 f"one and the same run); set rl.{key} directly")
            if key in NOT_GRIDDABLE or key not in cls.model_fields:
                allowed = sorted(set(cls.model_fields) - NOT_GRIDDABLE - BOOKKEEPING)
                raise ValueError(f"rl.grid.{key}: not a sweepable RL setting; sweepable: {allowed} (SFT lengths and "
                                 "seeds come from sft.checkpoints and sft.seeds)")
            if not isinstance(values, list) or not values:
                raise ValueError(f"rl.grid.{key}: give a non-empty list of values, e.g. {key}: [a, b]")
            if len({repr(v) for v in values}) != len(values):
                raise ValueError(f"rl.grid.{key}: repeated values {values}")
            checked = []
            for i, v in enumerate(values):
                field = cls.model_fields[key]
                try:  # the value as the field reads it (1e-6 -> float), its constraints checked, nothing else
                    kind = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
                    checked.append(TypeAdapter(kind).validate_python(v))
                except ValidationError as exc:
                    msgs = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
                    raise ValueError(f"rl.grid.{key}[{i}] = {v!r}: {msgs}") from None
            grid[key] = checked
        return grid

    @model_validator(mode="after")
    def _clipping_needs_iterations(self):
        iterations = self.grid.get("num_iterations", [self.num_iterations])
        if min(iterations) > 1:
            return self
        why = ("with rl.num_iterations=1 the policy ratio is always 1 (TRL), so clipping never acts: set "
               "rl.num_iterations > 1 (every value of a num_iterations grid) or leave it out")
        for key, default in (("epsilon", 0.2), ("epsilon_high", None)):
            if key in self.grid:
                raise ValueError(f"rl.grid.{key}: {why}")
            if getattr(self, key) != default:
                raise ValueError(f"rl.{key}={getattr(self, key)}: {why}")
        return self

    @field_validator("face_values")
    @classmethod
    def _face_range(cls, v):
        if not 1 <= v[0] < v[1] <= 99:
            raise ValueError(f"give [low, high] with 1 <= low < high <= 99, not {list(v)}")
        return v

    def rule_lists(self) -> list[tuple[str, ...]]:
        """Every value rl.rules takes: its own, or each of an rl.grid over it."""
        return [tuple(r) for r in self.grid.get("rules", [self.rules])]

    @model_validator(mode="after")
    def _stated_rules(self):
        if not any("varied" in rules for rules in self.rule_lists()):
            for key, default in (("face_values", (1, 13)), ("face_tied", 0.0)):
                if key in self.grid or getattr(self, key) != default:
                    raise ValueError(f"rl.{key} shapes the 'varied' rules of rl.rules, which has none: add 'varied' "
                                     f"to rl.rules or leave rl.{key} out")
        for rules in self.rule_lists():
            if len(set(rules)) != len(rules):
                raise ValueError(f"rl.rules: {list(rules)} repeats a rule; list each once")
        return self

    def stated(self) -> dict:
        """The keyword arguments of a task's ``rl_dataset`` for ``rl.rules`` (empty: the training rule)."""
        if not self.rules:
            return {}
        return {"rules": self.rules, "face_values": self.face_values, "face_tied": self.face_tied}

    @model_validator(mode="after")
    def _algorithm_options(self):
        algos = self.grid.get("algorithm", [self.algorithm])
        if "rloo" in algos:
            if "group" in self.grid.get("scale_rewards", [self.scale_rewards]):
                raise ValueError("rl.scale_rewards=group: TRL's RLOO has no per-group scaling; use batch "
                                 "(normalise advantages per generation batch) or none")
            if self.grid.get("loss_type", [self.loss_type]) != ["dapo"]:
                raise ValueError("rl.loss_type: TRL's RLOO has one loss; leave rl.loss_type at its default with "
                                 "rl.algorithm=rloo")
        return self

    @property
    def warmup(self) -> int:
        """The warm-up steps in effect (``warmup_steps``, or 10% of ``max_steps``)."""
        return self.max_steps // 10 if self.warmup_steps is None else self.warmup_steps

    @model_validator(mode="after")
    def _check(self):
        if self.checkpoint and (self.trunk or self.sft_step is not None or self.sft_seed is not None):
            raise ValueError("give rl.checkpoint, or rl.sft_step (with rl.trunk or rl.sft_seed), not both")
        if (self.trunk or self.sft_seed is not None) and self.sft_step is None:
            raise ValueError("rl.trunk and rl.sft_seed need rl.sft_step (which SFT length of the trunk to start from)")
        if self.trunk and self.sft_seed is not None:
            raise ValueError("rl.sft_seed picks this config's own trunk; with rl.trunk the directory names the seed")
        completions = self.batch_size * self.num_generations
        per_step = self.num_workers * self.gradient_accumulation_steps
        if completions % per_step:
            raise ValueError(
                f"rl.batch_size * rl.num_generations = {completions} completions per step must split evenly over "
                f"rl.num_workers * rl.gradient_accumulation_steps = {per_step} micro-batches; "
                f"e.g. set rl.batch_size to a multiple of {per_step}")
        return self

    @property
    def per_device_batch_size(self) -> int:
        """Completions per worker per micro-step (TRL's per_device_train_batch_size)."""
        return self.batch_size * self.num_generations // (self.num_workers * self.gradient_accumulation_steps)

    def eval_steps(self) -> list[int]:
        """Steps at which ID/OOD are evaluated: 0, every ``eval_every``, and the last."""
        steps = {0, self.max_steps}
        if self.eval_every:
            steps.update(range(self.eval_every, self.max_steps, self.eval_every))
        return sorted(steps)

    def identity(self) -> dict:
        """Fields that shape the RL trajectory (not: where it starts, which the run id adds, nor logging); fields
        added later are left out at their defaults, so earlier runs keep their ids."""
        out = self.model_dump(mode="json", exclude={"checkpoint", "trunk", "sft_step", "sft_seed", "grid", *BOOKKEEPING})
        for name, default in LATER_FIELDS.items():
            if out.get(name) == default:
                del out[name]
        if self.rules:  # how stated-rule prompts are dealt: a run made with another dealing is another run
            from raysweep.tasks.generalpoints import STATED_DEAL

            out["stated_deal"] = STATED_DEAL
        return out
