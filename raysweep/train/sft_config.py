"""Configuration of the SFT stage (the trunk): what to train, how long, where to checkpoint, on what."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from raysweep.train.workers_config import WorkersConfig

CONSTANT_SCHEDULES = ("constant", "constant_with_warmup")


class SFTConfig(WorkersConfig):
    """One SFT run per seed (the trunk), checkpointed at every requested SFT length.

    The learning rate is warmed up and then held constant, so the checkpoint at step k of the trunk is
    the same model a k-step run would give: one run serves every SFT length, and no prefix is trained
    twice. Decaying schedules are refused.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seeds: tuple[int, ...] = Field((0,), description="One trunk per seed (data order, expert choice, init).")
    checkpoints: tuple[int, ...] = Field(
        (0, 10, 20, 40, 80), description="SFT lengths (optimizer steps) to checkpoint and evaluate; 0 is the base.")
    learning_rate: float = Field(5e-5, gt=0, description="Peak (and constant) learning rate.")
    lr_scheduler: str = Field("constant_with_warmup", description="constant or constant_with_warmup (nothing that decays).")
    warmup_steps: int = Field(5, ge=0, description="Linear warm-up steps before the constant rate.")
    per_device_batch_size: int = Field(8, ge=1, description="Examples per worker per micro-step.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-steps per optimizer step.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    max_length: int = Field(1024, ge=16, description="Longest prompt+completion in tokens; a run whose data is longer is refused.")
    num_examples: int = Field(1000, ge=1, description="Size of the fixed expert SFT set (cycled for as many epochs as needed).")
    expert: Literal["first", "random"] = Field("random", description="Which solver solution an expert answer shows.")
    revision_share: float = Field(
        0.0, ge=0.0, le=1.0, description="Share of the expert examples that are two-attempt episodes: a plausible "
        "wrong first answer, the verifier's feedback on it, then the expert answer, with the loss on the expert "
        "answer only (raysweep.tasks.revisions). A pre-training stage's way to a base that can revise from "
        "feedback (task.attempts > 1); 0: single-turn expert answers (the paper's SFT).")
    revision_attempts: int = Field(
        2, ge=2, le=16, description="Most attempts in a revision episode (sft.revision_share): each has between 1 and "
        "revision_attempts - 1 wrong answers (uniform), each followed by the verifier's feedback, then the expert "
        "answer. 2: one wrong answer (two-attempt episodes); the paper's protocol evaluates up to 5 attempts.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations (saves memory, costs time).")
    logging_steps: int = Field(1, ge=1, description="Train-loss logging interval (steps).")

    @field_validator("lr_scheduler")
    @classmethod
    def _constant_only(cls, v: str) -> str:
        if v not in CONSTANT_SCHEDULES:
            raise ValueError(
                f"{v!r} is refused for an SFT trunk: the checkpoint at step k must equal a k-step run, which holds "
                f"only if the rate stays constant after warm-up (a decaying schedule depends on the total length). "
                f"Use one of {CONSTANT_SCHEDULES}.")
        return v

    @field_validator("checkpoints")
    @classmethod
    def _steps(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v:
            raise ValueError("give at least one SFT length, e.g. [0, 10, 20, 40]")
        if any(s < 0 for s in v):
            raise ValueError("SFT lengths are optimizer steps >= 0")
        if list(v) != sorted(set(v)):
            raise ValueError(f"must be increasing, without repeats: write {sorted(set(v))}")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or len(set(v)) != len(v):
            raise ValueError("give at least one seed, without repeats")
        return v

    @model_validator(mode="after")
    def _revision_attempts_need_episodes(self):
        if self.revision_attempts != 2 and not self.revision_share:
            raise ValueError(f"revision_attempts={self.revision_attempts} sets the length of revision episodes, but "
                             "revision_share is 0 (there are none): set revision_share > 0, or leave "
                             "revision_attempts at 2")
        return self

    @property
    def max_steps(self) -> int:
        return max(self.checkpoints)

    def identity(self) -> dict:
        """Fields that shape the training trajectory (not: seeds, checkpoint list, logging); fields added later
        are left out at their defaults, so earlier trunks keep their ids."""
        out = self.model_dump(mode="json", exclude={"seeds", "checkpoints", "logging_steps"})
        if out.get("revision_share") == 0.0:
            del out["revision_share"]
        if out.get("revision_attempts") == 2:
            del out["revision_attempts"]
        return out
