"""Configuration of the recovery analysis and the boundary search (``raysweep report``, ``raysweep boundary``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BoundaryConfig(BaseModel):
    """Which accuracy the window is about, what counts as recovery, and how far the search may go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str = Field("ood", description="The evaluation rule whose recovery the boundary search brackets "
                                         "(one of task.eval_rules).")
    threshold: float = Field(0.0, ge=-1.0, le=1.0,
                             description="An SFT length recovers when the 95% interval of RL's paired gain lies "
                                         "above this.")
    min_rl_update: float = Field(
        0.1, ge=0.0, description="RL update / SFT drift (the relative weight change RL made, over SFT's from the base) "
        "below which a cell is too weak to test recovery: it never counts as 'does not recover' in the window or "
        "the findings (a recovery it shows still counts).")
    update_angles: int = Field(
        4, ge=0, description="Weight matrices (spread over the blocks) on which each RL trial measures the "
        "principal-angle change toward or away from the base when it ends (SVDs of three checkpoints each; 0: none).")
    max_trials: int | None = Field(None, ge=1, description="Most search points (RL setting x SFT length, all seeds) "
                                                           "`raysweep boundary` runs; default: the whole grid.")
