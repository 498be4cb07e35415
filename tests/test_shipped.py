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
