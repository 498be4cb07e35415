"""YAML + key=value overrides, validated with errors that name the field."""

import pytest

from raysweep.config import ConfigError, RaysweepConfig, describe_fields, load_config, parse_overrides


def test_overrides_parse_as_yaml():
    assert parse_overrides(["eval.n=256", "task.ranks=[A, K]", "x.y.z=true", "lr=1e-5"]) == {
        "eval": {"n": 256}, "task": {"ranks": ["A", "K"]}, "x": {"y": {"z": True}}, "lr": 1e-5}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["eval.n"])


def test_yaml_plus_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  name: tiny\ntask:\n  num_cards: 3\n  eval_fraction: 0.5\neval:\n  n: 16\n")
    cfg = load_config(p, ["eval.n=12", "task.target=12"])
    assert cfg.model.name == "tiny" and cfg.task.num_cards == 3 and cfg.eval.n == 12 and cfg.task.target == 12
    assert load_config(p).digest() != cfg.digest()
    again = load_config(None, []).model_validate(__import__("yaml").safe_load(cfg.to_yaml()))
    assert again == cfg


def test_errors_name_every_bad_field(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(None, ["eval.n=0", "task.num_cards=9", "task.colour=red", "model.dtype=fp8"])
    msg = str(exc.value)
    for field in ("eval.n", "task.num_cards", "task.colour", "model.dtype"):
        assert field in msg
    assert "unknown key" in msg
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_every_field_has_help():
    lines = describe_fields(RaysweepConfig)
    assert all("--" in line and not line.rstrip().endswith("--") for line in lines if line.startswith("  "))
