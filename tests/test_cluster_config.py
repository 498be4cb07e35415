"""cluster.yaml is a valid Ray cluster launcher config (checked with Ray's own validator, offline)."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_cluster_yaml_passes_rays_validator():
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    config = prepare_config(raw)
    validate_config(config)
    nodes = config["available_node_types"]
    assert config["head_node_type"] == "head" and nodes["head"]["resources"] == {"CPU": 0}
    gpu = [name for name, n in nodes.items() if name != "head"]
    assert gpu and all(nodes[n]["node_config"]["InstanceType"].startswith(("g", "p")) for n in gpu)
    # every node installs raysweep from the mounted checkout
    assert any("pip install" in c and "-e ." in c for c in config["setup_commands"])
    assert config["file_mounts"] == {"~/raysweep": "."}
