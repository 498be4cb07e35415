"""Where and how a training stage runs (shared by SFT and RL): Ray Train workers, devices, DeepSpeed ZeRO."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DeepSpeedConfig(BaseModel):
    """DeepSpeed ZeRO settings passed to the TRL/transformers trainer (``deepspeed=``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: Literal[0, 2, 3] = Field(2, description="ZeRO stage: 0 (data parallel), 2 (shard optimizer+grads), 3 (+params).")
    offload_optimizer: bool = Field(False, description="Keep optimizer state on the CPU (ZeRO-2/3; JIT-builds cpu_adam).")
    offload_params: bool = Field(False, description="Keep parameters on the CPU (ZeRO-3 only).")

    @model_validator(mode="after")
    def _check(self):
        if self.offload_params and self.stage != 3:
            raise ValueError("deepspeed.offload_params needs deepspeed.stage: 3")
        if self.offload_optimizer and self.stage == 0:
            raise ValueError("deepspeed.offload_optimizer needs deepspeed.stage 2 or 3")
        return self


class WorkersConfig(BaseModel):
    """The runtime of one training job: data-parallel Ray Train workers, each a torch.distributed rank."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 on GPUs that support it, else fp32.")
    num_workers: int = Field(1, ge=1, description="Ray Train workers (data-parallel ranks) per job.")
    use_gpu: bool | None = Field(None, description="One GPU per worker; default: if the Ray cluster has GPUs.")
    cpus_per_worker: int = Field(1, ge=1, description="CPUs reserved per worker (also its torch threads).")
    deepspeed: DeepSpeedConfig = Field(default_factory=DeepSpeedConfig, description="DeepSpeed ZeRO.")

    def bf16(self, cuda: bool) -> bool:
        """Train in bf16? (``auto``: on GPUs that support it.)"""
        if self.precision != "auto":
            return self.precision == "bf16"
        import torch

        return cuda and torch.cuda.is_bf16_supported()
