"""The thin Ray shell: run a worker function on ``num_workers`` Ray Train workers (TorchTrainer).

Ray Train V2 (the default in Ray 2.60) sets up the torch process group (gloo on CPU, nccl on GPU) and
the RANK/WORLD_SIZE/MASTER_* environment that the worker functions read. Without ``RAY_ADDRESS`` a new
local Ray instance is started (the embedded default); with it (``RAY_ADDRESS=auto`` on a cluster node),
or under ``ray job submit``, the existing cluster is used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from raysweep.train.workers_config import WorkersConfig


LOOPBACK = "127.0.0.1"
QUIET_LOGGERS = ("ray.train.v2._internal.execution.controller.placement_group_cleaner",)
"""Loggers silenced in Ray's worker processes. Without the dashboard (the local default) Ray's state API is
absent, and Train V2's placement-group cleaner warns about it every few seconds for the whole run."""


def quiet_ray_workers() -> None:
    """Ray ``worker_process_setup_hook``: runs in every worker process Ray starts for this job."""
    import logging
    import os

    import ray

    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # Ray's state API (used inside workers, e.g. by Train's placement-group cleaner) finds the cluster from
    # RAY_ADDRESS, else from the file `ray start` last wrote, which may name another, dead cluster: the
    # cleaner then dies on a GCS timeout. Point it at the cluster this worker belongs to.
    if not os.environ.get("RAY_ADDRESS"):
        try:
            os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
        except Exception:  # noqa: BLE001 - never fail a worker over this
            pass


RUNTIME_ENV = {
    # Ray Train V2 patches print() in workers to go through its logger, which echoes every line twice and
    # breaks libraries that capture stdout (dill, used by datasets): keep the plain print.
    "env_vars": {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0", "TOKENIZERS_PARALLELISM": "false"},
    "worker_process_setup_hook": "raysweep.train.launch.quiet_ray_workers",
}


def driver_runtime_env(job_runtime_env: dict | None) -> dict:
    """raysweep's runtime env, minus what a submitted job's own runtime env already sets (Ray refuses to
    merge a driver's runtime env that sets the same field or environment variable as the job's)."""
    job = job_runtime_env or {}
    env_vars = {k: v for k, v in RUNTIME_ENV["env_vars"].items() if k not in (job.get("env_vars") or {})}
    out: dict = {"env_vars": env_vars} if env_vars else {}
    if "worker_process_setup_hook" not in job:
        out["worker_process_setup_hook"] = RUNTIME_ENV["worker_process_setup_hook"]
    return out


def ensure_ray() -> None:
    import json

    import ray

    if not ray.is_initialized():
        # Under `ray job submit` the job's runtime env (working_dir, env_vars, ...) arrives in this variable.
        job = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}").get("runtime_env")
        # RAY_ADDRESS (set under `ray job submit`; `auto` joins the cluster this node belongs to) or a new
        # local instance: never silently the last cluster `ray start` recorded on this machine, alive or not.
        address = os.environ.get("RAY_ADDRESS") or "local"
        local = {}
        if address == "local":
            # The embedded default is one machine: every Ray server listens on loopback only (Ray would
            # otherwise bind the node's outward address and 0.0.0.0). Ray turns a 127.0.0.1 node address
            # into the outward one unless clustering is off, which is what this constant says.
            import ray._private.ray_constants as ray_constants

            ray_constants.ENABLE_RAY_CLUSTER = False
            local = {"_node_ip_address": LOOPBACK}
        ray.init(address=address, include_dashboard=False, log_to_driver=True, configure_logging=True,
                 logging_level="WARNING", runtime_env=driver_runtime_env(job) or None, **local)


def cluster_has_gpus() -> bool:
    import ray

    ensure_ray()
    return ray.cluster_resources().get("GPU", 0) > 0


def run_on_workers(fn: Callable[[dict], object], job: dict, workers: "WorkersConfig", *, name: str,
                   output_dir: str | Path, max_failures: int = 0):
    """Run ``fn(job)`` on ``workers.num_workers`` workers of a Ray Train TorchTrainer and wait; raises if
    training failed. Ray Train's own state goes under ``<output_dir>/ray``."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    ensure_ray()
    gpu = cluster_has_gpus() if workers.use_gpu is None else workers.use_gpu
    trainer = TorchTrainer(
        fn,
        train_loop_config=job,
        scaling_config=ScalingConfig(num_workers=workers.num_workers, use_gpu=gpu,
                                     resources_per_worker={"CPU": workers.cpus_per_worker, **({"GPU": 1} if gpu else {})}),
        torch_config=TorchConfig(backend="nccl" if gpu else "gloo"),
        run_config=RunConfig(name=name, storage_path=str((Path(output_dir) / "ray").resolve()),
                             failure_config=FailureConfig(max_failures=max_failures)),
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    return result
