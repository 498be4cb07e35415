"""Configuration of a sweep (``raysweep run``): its name, where it lives, how trials are scheduled."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SweepConfig(BaseModel):
    """How the grid's trials run; what they train is the ``sft`` and ``rl`` sections (with ``rl.grid``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, description="Sweep name (its directory); default: sweep-<hash of the config>.")
    label: str | None = Field(
        None, description="A caption for what this sweep is (e.g. 'ANALOGUE: a 0.8M model built from scratch'), "
                          "shown under the report's heading and in the title of every report figure.")
    storage: str | None = Field(
        None, description="Where sweeps live: a directory, or a cloud URI (s3://bucket/prefix, gs://..., options "
        "such as endpoint_override in the query string; Tune's state goes there, the sweep's files are mirrored). "
        "Default: <output_dir>/sweeps.")
    max_concurrent_trials: int | None = Field(
        None, ge=1, description="Trials at once; default: as many as the cluster fits (see the resource plan).")
    rl_from: tuple[int, ...] | None = Field(
        None, description="SFT lengths that get RL cells (a subset of sft.checkpoints); default: every length. The "
                          "trunk is still evaluated at every length, so the curve can be dense where RL is costly.")
    max_failures: int = Field(1, ge=0, description="Retries of a failed trial (each resumes its RL checkpoint).")
    trial_memory_mb: int = Field(64, ge=1, description="Memory the trial driver reserves (it holds no CPU or GPU).")
