"""DeepSpeed configs for the transformers/TRL ``deepspeed=`` argument (pure)."""

from __future__ import annotations

from raysweep.train.workers_config import DeepSpeedConfig


def deepspeed_config(ds: DeepSpeedConfig) -> dict:
    """A ZeRO config whose batch sizes, clipping and precision defer to the trainer ("auto")."""
    zero: dict = {"stage": ds.stage}
    if ds.stage >= 2:
        zero.update(overlap_comm=False, contiguous_gradients=True, reduce_scatter=True)
    if ds.stage == 3:
        zero.update(stage3_gather_16bit_weights_on_model_save=True)  # save_model writes whole weights
    if ds.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if ds.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    return {
        "train_micro_batch_size_per_gpu": "auto",
        "train_batch_size": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "zero_optimization": zero,
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
