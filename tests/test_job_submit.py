"""The sweep as a Ray job on a real two-node local cluster: `ray start` (head + a second node, loopback),
`ray job submit`, results table and MLflow runs checked afterwards; both nodes stopped by process id. The sweep
submitted is the bring-your-own-task example (jobs/example-files: the `files` task, a trunk and a 1 x 2 GRPO
grid), whose report must hold both of its evaluation sets."""

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from helpers import free_port, kill_tree, report_has_sets

ROOT = Path(__file__).resolve().parents[1]
# the environment as it was before any test ran: an in-process ray.init in an earlier test leaves Ray's own
# variables in os.environ (RAY_AUTH_MODE, RAY_CLIENT_MODE, ...), which must not reach this cluster's nodes
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
SWEEP = ["sft.checkpoints=[5]", "sweep.rl_from=[5]", "sft.cpus_per_worker=1", "rl.cpus_per_worker=1",
         "rl.max_steps=2", "eval.n=8", "eval.train_n=8", "sweep.name=submitted"]


def _ray(*args) -> list[str]:
    return [str(Path(sys.executable).parent / "ray"), *args]


@pytest.mark.integration
def test_sweep_submitted_as_a_ray_job_to_a_two_node_cluster(tmp_path):
    from mlflow.tracking import MlflowClient

    port, dash = free_port(), free_port()
    # Ray's token auth, with a token of this test's own: every node, `ray status` and `ray job submit` use it
    env = {**CLEAN_ENV, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex}
    logs = tmp_path / "logs"
    logs.mkdir()
    # one temp dir per node (short: Ray's unix sockets live there): on one machine two nodes would otherwise
    # share a session directory, and one node's runtime-env cleanup would delete the other's working_dir
    temps = [tempfile.mkdtemp(prefix="rs-", dir="/tmp") for _ in range(2)]
    head = subprocess.Popen(
        _ray("start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1",
             "--num-gpus=0", "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
             "--disable-usage-stats", f"--temp-dir={temps[0]}"),
        stdout=open(logs / "head.log", "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    second = None
    try:
        deadline = time.time() + 120
        status = None
        while time.time() < deadline:
            status = subprocess.run(_ray("status", f"--address=127.0.0.1:{port}"), capture_output=True, text=True,
                                    env=env)
            if status.returncode == 0:
                break
            assert head.poll() is None, (logs / "head.log").read_text()[-3000:]
            time.sleep(2)
        assert status is not None and status.returncode == 0, "the head never came up"
        second = subprocess.Popen(
            _ray("start", "--block", f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                 "--num-gpus=0", "--disable-usage-stats", f"--temp-dir={temps[1]}"),
            stdout=open(logs / "second.log", "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
        while time.time() < deadline + 60:
            out = subprocess.run(_ray("status", f"--address=127.0.0.1:{port}"), capture_output=True, text=True,
                                 env=env).stdout
            if out.count("node_") >= 2:
                break
            time.sleep(2)
        assert out.count("node_") >= 2, out

        out_dir = tmp_path / "out"
        for _ in range(30):  # the head's job agent may register a little after its node is listed
            submit = subprocess.run(
                _ray("job", "submit", f"--address=http://127.0.0.1:{dash}", f"--working-dir={ROOT}",
                     "--runtime-env-json", '{"env_vars": {"TOKENIZERS_PARALLELISM": "false"}}', "--",
                     "raysweep", "run", "jobs/example-files/sweep.yaml", *SWEEP, f"output_dir={out_dir}"),
                capture_output=True, text=True, env=env, timeout=900)
            if "No available agent to submit job" not in submit.stderr:
                break
            time.sleep(3)
        assert submit.returncode == 0, submit.stdout[-4000:] + submit.stderr[-3000:]
        assert "succeeded" in submit.stdout.lower()

        sdir = out_dir / "sweeps" / "submitted"
        rows = list(csv.DictReader(open(sdir / "results.csv")))
        assert len(rows) == 2 and all(r["finished"] == "True" for r in rows)
        client = MlflowClient(tracking_uri=f"sqlite:///{out_dir / 'mlflow.db'}")
        parent = (sdir / "mlflow_run_id").read_text().strip()
        exp = client.get_experiment_by_name("raysweep")
        children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
        assert sorted(r.data.tags["raysweep.kind"] for r in children) == ["rl"] * 2 + ["sft"]

        # the files task end to end: the report has a recovery row and figure per set, the trunk's evaluation
        # holds both held-out sets (with the expert-answer loss) and the trunk's own problems
        assert len(report_has_sets(sdir, ("id", "ood"))) == 4  # 2 cells x 2 sets
        ev = json.loads(next(out_dir.glob("trunks/*/seed-0/checkpoints/step-5/eval.json")).read_text())
        assert set(ev) == {"id", "ood", "id-train"} and ev["ood"]["summary"]["loss"] is not None
        assert all(rec["problem"].startswith("Compute (") for rec in ev["ood"]["records"])
    finally:
        for proc in (second, head):
            if proc is not None:
                kill_tree(proc, graceful=True)
        for d in temps:
            shutil.rmtree(d, ignore_errors=True)
