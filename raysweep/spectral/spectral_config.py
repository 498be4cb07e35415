"""Configuration of the spectral analysis and edits (``raysweep spectral``)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


EDIT_KINDS = ("directions", "values", "both", "topk")
LLAMA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def top_k(rank: int, fraction: float) -> int:
    """The number of singular directions a fraction of the rank stands for (at least 1, at most rank)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"a fraction of the rank must be in (0, 1], got {fraction}")
    return max(1, min(rank, round(fraction * rank)))


def parse_edit(text: str) -> tuple[str, float | None]:
    """``directions`` | ``values`` | ``both`` | ``topk:<fraction>`` -> (kind, fraction)."""
    kind, _, arg = text.partition(":")
    if kind not in EDIT_KINDS:
        raise ValueError(f"unknown edit {text!r}: use one of directions, values, both, topk:<fraction> (e.g. topk:0.1)")
    if kind == "topk":
        try:
            f = float(arg)
        except ValueError:
            raise ValueError(f"edit {text!r}: topk needs a fraction of the rank, e.g. topk:0.1") from None
        top_k(1, f)  # validates the range
        return kind, f
    if arg:
        raise ValueError(f"edit {text!r}: {kind} takes no argument")
    return kind, None


class SpectralConfig(BaseModel):
    """Which weights are analysed and edited, how finely, and where the linear algebra runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    modules: tuple[str, ...] = Field(
        LLAMA_MODULES, description="Module types analysed: the name part before `.weight` (Llama/Qwen/SmolLM "
                                   "names by default; e.g. c_attn, c_proj, c_fc for GPT-2). Only 2-D weights.")
    layer_pattern: str = Field(r"(?:^|\.)(?:layers|h|blocks)\.(\d+)\.",
                               description="Regex whose first group is the block index in a weight's name; "
                                           "weights without a block index (embeddings, head) are skipped.")
    fractions: tuple[float, ...] = Field(
        (0.01, 0.05, 0.1, 0.25, 0.5), description="Top-k subspaces compared, as fractions of each matrix's rank.")
    dtype: Literal["float64", "float32"] = Field("float64", description="Precision of the SVDs (float64: synthetic "
                                                                       "rotations recovered to 1e-9 rad in the tests).")
    matrices_per_task: int = Field(8, ge=1, description="Weight matrices per Ray task (a task holds one "
                                                        "matrix's SVDs, for at most 8 checkpoints, at a time).")
    cpus_per_task: float = Field(1.0, gt=0, description="CPUs each Ray task reserves (bounds how many run at once).")
    executor: Literal["ray", "local"] = Field("ray", description="ray: tasks on the Ray cluster; local: in this process.")
    in_sweep: bool = Field(False, description="`raysweep run` ends with the spectral analysis of the sweep.")
    edits: tuple[str, ...] = Field(
        ("directions", "values", "topk:0.1"),
        description="Edits `raysweep spectral edit` builds and evaluates: directions (ref's singular vectors, "
                    "target's values), values (target's vectors, ref's values), both (the ref's matrices: a control), "
                    "topk:<f> (only the top f of the ref's directions).")
    edit_modules: tuple[str, ...] = Field((), description="Module types the edits touch (default: all of `modules`).")
    edit_layers: tuple[int, ...] = Field((), description="Block indices the edits touch (default: all).")

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v:
            raise ValueError("give at least one fraction of the rank, e.g. [0.1]")
        if any(not 0 < f <= 1 for f in v):
            raise ValueError("fractions of the rank must lie in (0, 1]")
        return tuple(sorted(set(v)))

    @field_validator("layer_pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        try:
            if re.compile(v).groups < 1:
                raise ValueError("the pattern needs a group capturing the block index, e.g. \\.layers\\.(\\d+)\\.")
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return v

    @field_validator("modules")
    @classmethod
    def _modules(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("name at least one module type, e.g. [q_proj, v_proj]")
        return v

    @field_validator("edits")
    @classmethod
    def _edits(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for e in v:
            parse_edit(e)
        if len(set(v)) != len(v):
            raise ValueError("an edit is listed twice")
        return v

    @field_validator("edit_layers")
    @classmethod
    def _layers(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(i < 0 for i in v):
            raise ValueError("block indices are >= 0")
        return tuple(sorted(set(v)))

    @model_validator(mode="after")
    def _edit_modules_analysed(self) -> "SpectralConfig":
        unknown = [m for m in self.edit_modules if m not in self.modules]
        if unknown:
            raise ValueError(f"edit_modules: {unknown} are not in spectral.modules {list(self.modules)}")
        return self

    @property
    def touched_modules(self) -> tuple[str, ...]:
        return self.edit_modules or self.modules
