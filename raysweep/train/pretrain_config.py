"""Configuration of the optional pre-training stage: an ordinary trunk, run before the SFT trunks, whose
last checkpoint becomes their base model."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class PretrainConfig(BaseModel):
    """A stage that prepares the base model before SFT, e.g. teaching a from-scratch model to *read* the
    rule (``task: {face_values: [1, 13]}``: face values vary and are stated in every prompt) so that SFT on
    the ID rule has something to erode. It is an SFT trunk with this section's ``task`` and ``sft``
    overrides, one seed, checkpointed at ``steps``; it is trained once and shared by every seed's trunk."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(0, ge=0, description="Optimizer steps of the stage; 0: no pre-training (the base is model.name).")
    seed: int = Field(0, description="Seed of the stage (data order, expert choice).")
    checkpoints: tuple[int, ...] = Field(
        (), description="Earlier stage lengths also checkpointed and evaluated (the base's learning curve); the "
                        "same stage serves pretrain.steps set to any of them later, without training again.")
    task: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the task section for this stage, e.g. {face_values: [1, 13]}. "
        "A varied-rule stage (face_values) does not inherit task.targets; its targets come from target_values.")
    eval: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the eval section for this stage (its one checkpoint's "
                                          "evaluation), e.g. {n: 16} where the stage's task has a small pool.")
    sft: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the sft section for this stage (learning_rate, num_examples, "
                                          "per_device_batch_size, ...); seeds and checkpoints come from seed and steps.")

    @model_validator(mode="after")
    def _earlier(self) -> "PretrainConfig":
        bad = [s for s in self.checkpoints if not 0 < s < self.steps]
        if bad:
            raise ValueError(f"pretrain.checkpoints: {bad} are not between 0 and pretrain.steps ({self.steps}); "
                             "list earlier lengths of the stage only")
        return self
