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
    max_trials: int | None = Field(None, ge=1, description="Most search points (RL setting x SFT length, all seeds) "
                                                           "`raysweep boundary` runs; default: the whole grid.")
