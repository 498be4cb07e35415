"""RL update / SFT drift (raysweep.spectral.update): the pooled norms and ratio on checkpoints made from tiny by known
changes, the angle toward or away from the base, and the stored file the report reads."""

import json
import math
from pathlib import Path

import pytest
import torch

from raysweep.spectral.spectral_config import SpectralConfig
from raysweep.spectral.update import measure, pooled_relative, read_update, spread, update_ratio


def test_pure_parts():
    assert pooled_relative([9.0, 16.0], [100.0, 0.0]) == pytest.approx(0.5)  # sqrt(25) / sqrt(100)
    assert math.isnan(pooled_relative([1.0], [0.0]))
    assert update_ratio(0.02, 0.1) == pytest.approx(0.2)
    assert update_ratio(0.02, 0.0) is None  # RL from the base: SFT had not moved it
    assert spread(list(range(10)), 4) == [0, 3, 6, 9] and spread([1, 2], 5) == [1, 2] and spread([1, 2, 3], 1) == [2]
    assert spread([1, 2, 3], 0) == []


def _shifted(src: Path, out: Path, scale: float, toward: Path | None = None, share: float = 0.0) -> Path:
    """``src`` with every analysed matrix W -> W + scale * N (a fixed random direction per matrix, relative to ||W||),
    or, with ``toward``, moved ``share`` of the way back to that checkpoint's weights."""
    from transformers import AutoModelForCausalLM

    from raysweep.models import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    goal = dict(AutoModelForCausalLM.from_pretrained(toward, dtype=torch.float32).named_parameters()) if toward else {}
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2 and ".layers." in name and name.rsplit(".", 2)[-2].endswith("_proj"):
                if toward:
                    p.copy_(p + share * (goal[name] - p))
                else:
                    n = torch.randn(p.shape, generator=g)
                    p.add_(scale * n * p.norm() / n.norm())
    model.save_pretrained(out)
    load_tokenizer(src).save_pretrained(out)
    return out


def test_the_ratio_and_the_angle_on_checkpoints_with_known_changes(tiny_path, tmp_path):
    cfg = SpectralConfig()
    start = _shifted(tiny_path, tmp_path / "sft", 0.2)  # SFT: every matrix moved 20% of its norm
    away = _shifted(start, tmp_path / "rl-away", 0.05)  # RL: 5% more, in a new direction
    back = _shifted(start, tmp_path / "rl-back", 0.0, toward=tiny_path, share=0.5)  # RL: half the way back
    u = measure(tiny_path, start, away, cfg, angle_matrices=3)
    assert u["sft_drift"] == pytest.approx(0.2, rel=1e-3)
    assert u["rl_update"] == pytest.approx(0.05, rel=1e-3)  # relative to the start's weights
    assert u["ratio"] == pytest.approx(u["rl_update"] / u["sft_drift"])
    assert u["matrices"] == 14 and len(u["angle_matrices"]) == 3  # tiny: 2 blocks x 7 modules
    assert u["angle_change"] > 0 and u["angle_rl"] > 0  # a new direction: further from the base
    b = measure(tiny_path, start, back, cfg, angle_matrices=3)
    assert b["angle_change"] < 0  # half way back: the directions turn toward the base
    assert b["angle_base_final"] < b["angle_base_start"]
    assert measure(tiny_path, tiny_path, away, cfg, angle_matrices=0)["ratio"] is None  # from the base itself
    assert "angle_change" not in measure(tiny_path, start, away, cfg, angle_matrices=0)


def test_the_stored_measure_is_read_back_and_made_for_older_runs(tiny_path, tmp_path):
    rdir = tmp_path / "run"
    rdir.mkdir()
    start = _shifted(tiny_path, tmp_path / "sft", 0.1)
    _shifted(start, rdir / "final", 0.02)
    assert read_update(rdir) is None  # nothing stored, nothing to compute it from
    made = read_update(rdir, tiny_path, start, SpectralConfig(), angle_matrices=1)
    assert made["ratio"] == pytest.approx(0.2, rel=1e-3)
    stored = json.loads((rdir / "update.json").read_text())
    assert stored["ratio"] == made["ratio"] and read_update(rdir) == stored
    assert read_update(tmp_path / "gone", tiny_path, start, SpectralConfig()) is None  # no checkpoint: None
