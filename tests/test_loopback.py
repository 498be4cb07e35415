"""The embedded default listens on loopback only: a local Ray instance started by raysweep binds none of
its servers to an outward address or to all interfaces (and starts no dashboard)."""

import json
import subprocess
import sys

import pytest

PROBE = r"""
import json, os, psutil, ray
from raysweep.train.launch import ensure_ray
ensure_ray()
@ray.remote
def pid():
    return os.getpid()
ray.get([pid.remote() for _ in range(2)])
me = psutil.Process()
out = []
for p in [me] + me.children(recursive=True):
    try:
        out += [[p.name(), c.laddr.ip, c.laddr.port] for c in p.net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN]
    except psutil.Error:
        pass
print(json.dumps(out))
ray.shutdown()
"""


@pytest.mark.integration
def test_local_ray_listens_on_loopback_only():
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("RAY_")}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    listening = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(listening) >= 4, listening  # GCS, raylet, workers, agents
    outward = [x for x in listening if x[1] not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")]
    assert not outward, outward
    assert 8265 not in {x[2] for x in listening}  # no dashboard
