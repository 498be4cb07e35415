"""Shipped bases: the manifest lists every model file's sha256; a changed, truncated or LFS-pointer file fails at
load with the file named and the command that re-makes the base; the base shipped in the repository verifies."""

import json

import pytest

from raysweep import models, shipped


@pytest.fixture()
def ship(tiny_path, tmp_path):
    return shipped.export(tiny_path, tmp_path / "base", made_by="raysweep pretrain x.yaml --export base",
                          config_yaml="model: {name: tiny}\n", evals=[], parameters=1, trunk_id="t", step=0)


def test_an_exported_base_loads_and_lists_its_files(ship):
    manifest = shipped.verify(ship)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(manifest["files"])
    assert models.resolve(str(ship)) == ship.resolve() and (ship / "config.yaml").is_file()


def test_a_missing_or_replaced_file_fails_with_the_fix(ship):
    (ship / "model.safetensors").write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:00\n")
    with pytest.raises(models.ModelError, match=r"model.safetensors has \d+ bytes.*Git LFS pointer.*git lfs pull"):
        models.resolve(str(ship))
    (ship / "tokenizer.json").unlink()
    data = json.loads((ship / shipped.MANIFEST).read_text())
    data["files"] = {"tokenizer.json": data["files"]["tokenizer.json"]}
    (ship / shipped.MANIFEST).write_text(json.dumps(data))
    with pytest.raises(models.ModelError, match=r"tokenizer.json is missing.*raysweep pretrain x.yaml --export base"):
        models.resolve(str(ship))


def test_a_base_exported_from_an_exported_base_lists_every_stage(ship, tiny_path, tmp_path):
    from raysweep.config import load_config
    from raysweep.train.pretrain import pretraining_stages

    stage_yaml = "model: {name: tiny}\ntask: {num_cards: 3, targets: [12, 36]}\n"
    second = shipped.export(tiny_path, tmp_path / "second", made_by="raysweep pretrain y.yaml --export second",
                            config_yaml=stage_yaml, evals=[], parameters=1, trunk_id="u", step=0,
                            earlier=shipped.earlier_stages(ship))
    chain = shipped.earlier_stages(second)
    assert [s["made_by"] for s in chain] == ["raysweep pretrain x.yaml --export base",
                                             "raysweep pretrain y.yaml --export second"]
    assert [s["trunk_id"] for s in chain] == ["t", "u"] and chain[0]["config"] == "model: {name: tiny}\n"
    assert shipped.verify(second)["earlier_stages"] == chain[:1]
    # a sweep that starts from it: every stage behind its base, newest first
    stages = pretraining_stages(load_config(None, [f"model.name={second}"]))
    assert [name.split(" (")[1][:6] for name, _ in stages] == ["its co", "stage "]
    assert [st.task.num_cards for _, st in stages] == [3, 4] and "x.yaml" in stages[1][0]
    assert shipped.earlier_stages(tiny_path) == []  # not an exported base


def test_the_shipped_bases_verify_and_list_their_stages():
    for name, directory in shipped.SHIPPED.items():
        manifest = shipped.verify(directory)
        assert manifest["parameters"] > 5e5 and (directory / "config.yaml").is_file(), name
    # analogue-revise was exported from analogue-base (whose first stage predates the list: analogue-stage1.yaml)
    chain = shipped.earlier_stages(shipped.SHIPPED["analogue-revise"])
    assert [s["made_by"].split()[2] for s in chain] == ["jobs/analogue-base.yaml", "jobs/analogue-revise.yaml"]
