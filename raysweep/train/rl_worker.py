"""The RL stage's worker function: one data-parallel rank of TRL's GRPOTrainer or RLOOTrainer under
DeepSpeed ZeRO, rewarded by the task's scorer (GeneralPoints: its exact verifier).

It runs the same under Ray Train (``raysweep.train.launch``), under ``torchrun``, or as a plain process::

    torchrun --nproc-per-node 2 -m raysweep.train.rl_worker --job <output_dir>/rl/<run_id>/job.json

``job.json`` is what ``raysweep rl --plan-only`` writes. ID and OOD accuracy are evaluated at step 0
(reused from the starting checkpoint's manifest when it was evaluated with the same task and eval
settings), every ``rl.eval_every`` steps and at the end, on the live policy by all ranks together.
Per-step reward, verdict shares, KL and completion length go to MLflow and ``results.jsonl``. A rerun
resumes from the last trainer checkpoint; evaluations after that checkpoint are redone (the latest
record of a step is the one that counts).
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

from raysweep.train import trunk as T
from raysweep.train.distributed import Place, barrier, job_file_main, plain_loading, setup
from raysweep.train.record import StageRecorder, StepClock, config_params, eval_key, eval_summary

STEP_KEYS = ("reward", "reward_std", "frac_reward_zero_std", "kl", "entropy", "loss", "grad_norm", "learning_rate",
             "completions/mean_length", "completions/clipped_ratio", "verdict/correct", "verdict/wrong_value",
             "verdict/wrong_cards", "verdict/malformed", "verdict/wrong", "clip_ratio/region_mean")
"""Step metrics kept in ``results.jsonl`` (MLflow gets every numeric metric the trainer logs)."""


class _RLRun(StageRecorder):
    """Evaluation, results and MLflow for one RL run (shared by all ranks)."""

    def __init__(self, job: dict, cfg, place: Place, rdir: Path):
        super().__init__(cfg, place, rdir, f"[rl {cfg.rl.algorithm} {job['run_id']}]")
        self.job = job

    def start(self) -> None:
        job, rl = self.job, self.cfg.rl
        m = job.get("start_manifest") or {}
        tags = {"raysweep.kind": "rl", "raysweep.rl_run_id": job["run_id"], "raysweep.algorithm": rl.algorithm,
                "raysweep.parent_checkpoint": job["start_path"], "raysweep.run_dir": str(self.run_dir)}
        for key in ("trunk_id", "seed", "step"):
            if key in m:
                tags[f"raysweep.parent_{'sft_step' if key == 'step' else key}"] = str(m[key])
        if job.get("trunk_run_id"):
            tags["raysweep.parent_trunk_run"] = job["trunk_run_id"]
        params = config_params(self.cfg)
        params.update({"parent.checkpoint": job["start_path"], "parent.start": job["start"],
                       **{f"parent.{k}": str(v) for k, v in job["start_identity"].items()}})
        name = job.get("run_name") or (f"rl/{rl.algorithm}/" + (f"sft={m['step']}" if "step" in m
                                                                 else Path(job["start_path"]).name))
        self.start_tracking(name, tags, params, job.get("parent_run_id"))

    def evaluate_model(self, model, tokenizer, step: int, **extra) -> dict | None:
        """Evaluate ``model`` (whole weights on every rank) on ID/OOD; rank 0 records and returns the summary."""
        from raysweep.evaluate import evaluate

        import torch

        t0 = time.time()
        was_training = model.training
        model.eval()
        # evaluation seeds torch's RNG: fork it, so the rollouts after a mid-run evaluation continue the stream
        # they would have drawn without it (and differ between rl.seed values)
        devices = [self.place.local_rank] if self.place.cuda else []
        try:
            with torch.random.fork_rng(devices=devices):
                results = evaluate(model, tokenizer, self.cfg.task, self.cfg.eval, rank=self.place.rank,
                                   world=self.place.world)
        finally:
            model.train(was_training)
        if not self.place.main:
            return None
        summary = eval_summary(results)
        # every hand's answer and verdict, as for a trunk checkpoint (eval.json): paired comparisons use them
        (self.run_dir / "evals").mkdir(exist_ok=True)
        T.write_json_atomic(self.run_dir / "evals" / f"step-{step}.json",
                            {rule: {"summary": r.summary(), "records": r.records} for rule, r in results.items()})
        self.record_eval(step, summary, time.time() - t0, **extra)
        return summary

    def evaluate_start(self, tokenizer) -> None:
        """Step 0: the starting checkpoint's own evaluation when comparable, else a fresh one."""
        m = self.job.get("start_manifest") or {}
        if m.get("eval_key") == eval_key(self.cfg) and m.get("eval"):
            if self.place.main:
                self.record_eval(0, m["eval"], 0.0, reused_from=self.job["start_path"])
            return
        from raysweep import models

        with plain_loading():
            model, _ = models.load(self.job["start_path"], device=self.place.device)
        self.evaluate_model(model, tokenizer, 0)
        del model
        gc.collect()


def budgets(cfg, tokenizer) -> tuple[int, int]:
    """(tokens per answer, tokens per completion) of this run's rollouts. One attempt: both are
    ``rl.max_completion_length``, or the evaluation's default budget for the training rule's answers (1.5x the
    longest expert answer, +8; a task's own ``max_new_tokens`` where it sets one). With ``task.attempts`` > 1 each attempt gets that default, and an episode
    ``rl.max_completion_length`` (default: enough for every attempt and a long feedback turn between each); a
    budget that cannot hold them is refused, naming the field and the smallest value that fits."""
    from raysweep.config import ConfigError
    from raysweep.evaluate import auto_max_new_tokens
    from raysweep.tasks.protocol import task_of

    task = task_of(cfg.task)
    rl, attempts = cfg.rl, task.attempts
    if attempts == 1 and rl.max_completion_length:
        return rl.max_completion_length, rl.max_completion_length
    answer = task.max_new_tokens or auto_max_new_tokens(tokenizer, task.budget_examples(rl.seed))
    if attempts == 1:
        return answer, answer
    from raysweep.train.episodes import episode_budget, longest_feedback

    need = episode_budget(attempts, answer, longest_feedback(tokenizer, cfg.task))
    if rl.max_completion_length is None:
        return answer, need
    if rl.max_completion_length < need:
        raise ConfigError(f"rl.max_completion_length={rl.max_completion_length}: an episode of task.attempts={attempts} "
                          f"answers (up to {answer} tokens each) with a feedback turn between each needs {need} tokens; "
                          f"set rl.max_completion_length to at least {need}, leave it unset, or lower task.attempts")
    return answer, rl.max_completion_length


def trainer_args(cfg, rdir: Path, place: Place, budget: int, bf16: bool):
    """TRL's GRPOConfig or RLOOConfig for this run."""
    from raysweep.train.deepspeed import deepspeed_config

    rl = cfg.rl
    common = dict(
        output_dir=str(rdir / "trainer"),
        max_steps=rl.max_steps,
        per_device_train_batch_size=rl.per_device_batch_size,
        gradient_accumulation_steps=rl.gradient_accumulation_steps,
        learning_rate=rl.learning_rate,
        lr_scheduler_type="constant_with_warmup",
        max_grad_norm=1.0,
        logging_steps=rl.logging_steps,
        save_strategy="steps",
        save_steps=rl.save_every,
        save_total_limit=2,  # a damaged newest state falls back to the one before
        seed=rl.seed,
        data_seed=rl.seed,
        report_to=[],
        bf16=bf16,
        fp16=False,
        use_cpu=not place.cuda,
        ddp_backend=place.backend,
        deepspeed=deepspeed_config(rl.deepspeed),
        gradient_checkpointing=rl.gradient_checkpointing,
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,  # the reward reads the cards and rule columns
        num_generations=rl.num_generations,
        max_completion_length=budget,
        temperature=rl.temperature,
        top_p=rl.top_p,
        log_completions=False,
        **objective_args(rl),
    )
    if rl.algorithm == "grpo":
        from trl import GRPOConfig

        return GRPOConfig(**common)
    from trl import RLOOConfig

    return RLOOConfig(**common)


def objective_args(rl) -> dict:
    """The RL objective's settings, as TRL's GRPOConfig / RLOOConfig name them (pure)."""
    out = dict(beta=rl.beta, num_iterations=rl.num_iterations, epsilon=rl.epsilon, epsilon_high=rl.epsilon_high,
               mask_truncated_completions=rl.mask_truncated_completions, warmup_steps=rl.warmup)
    if rl.algorithm == "grpo":
        return out | dict(scale_rewards=rl.scale_rewards, loss_type=rl.loss_type)
    return out | dict(normalize_advantages=rl.scale_rewards == "batch")


def rl_worker(job: dict) -> dict | None:
    """Train (or resume) one RL run on this rank. Returns the final checkpoint on rank 0."""
    from raysweep.config import RaysweepConfig

    cfg = RaysweepConfig.model_validate(job["config"])
    rl = cfg.rl
    place = setup(rl.use_gpu, threads=rl.cpus_per_worker)
    rdir = Path(job["run_dir"])
    rdir.mkdir(parents=True, exist_ok=True)
    final = rdir / "final"
    run = _RLRun(job, cfg, place, rdir)
    if (final / "manifest.json").is_file():
        run.log(f"already finished: {final}")
        return {"final": str(final)} if place.main else None

    import torch
    from transformers import AutoModelForCausalLM, TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    from raysweep.models import load_tokenizer
    from raysweep.tasks.protocol import task_of
    from raysweep.train.rewards import VerifierReward
    from raysweep.train.rl_prompts import rl_prompts

    tokenizer = load_tokenizer(job["start_path"])
    task = task_of(cfg.task)
    seen = set(job.get("exclude_problems") or ())  # rl.prompts=unseen: planned with the job (rl.plan_job)
    dataset = rl_prompts(task, rl.num_prompts, rl.seed, seen, rl.stated())  # the prompts and the columns the scorer reads
    answer_tokens, budget = budgets(cfg, tokenizer)
    resume = T.latest_trainer_checkpoint(rdir)
    resume_step = int(resume.name.split("-")[1]) if resume else 0
    # evaluations recorded after the saved state belong to a trajectory that is about to be retrained
    evaluated = {r["step"] for r in T.read_results(rdir) if r.get("kind") == "eval" and r["step"] <= resume_step}
    todo_evals = [s for s in rl.eval_steps() if s not in evaluated]
    run.start()
    episodes = task.attempts > 1
    run.log(f"from {job['start']} | {rl.max_steps} steps x {rl.batch_size} prompts x {rl.num_generations} "
            + (f"episodes of <= {task.attempts} attempts (<= {answer_tokens} tokens each, {budget} in all; "
               f"reward: {rl.episode_reward})" if episodes else f"completions (<= {budget} tokens)")
            + f" | prompts: {len(dataset)} ({len(set(map(task.key, dataset.to_list())))} distinct problems"
            + (f", none of the trunk's {len(seen)} SFT problems)" if seen else ")")
            + (f" under stated rules {list(rl.rules)}" if rl.rules else "")
            + f" | world {place.world} on {place.device}"
            + (f" | resuming from step {resume_step}" if resume else ""))
    if resume:
        run.append({"kind": "resume", "from_step": resume_step, "evals_todo": todo_evals})
    if 0 in todo_evals:
        run.evaluate_start(tokenizer)
        barrier()

    bf16 = rl.bf16(place.cuda)
    args = trainer_args(cfg, rdir, place, budget, bf16)
    # The model loads after the args (which register the DeepSpeed config), so ZeRO-3 partitions it as it loads.
    model = AutoModelForCausalLM.from_pretrained(job["start_path"], dtype=torch.bfloat16 if bf16 else torch.float32,
                                                 use_safetensors=True)  # never pickle from a sweep directory
    eval_at = set(todo_evals) - {0}
    holder: dict = {}

    def evaluate_live(step: int) -> None:
        """Evaluate the policy being trained (ZeRO-3: its gathered weights) on all ranks."""
        from trl.models import unwrap_model_for_generation

        trainer = holder["trainer"]
        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator) as policy:
            run.evaluate_model(policy, tokenizer, step)
        eval_at.discard(step)
        barrier()

    class RLCallback(TrainerCallback):
        def __init__(self):
            self.clock = StepClock()

        def on_train_begin(self, args, state, control, **kw):
            self.clock.start(state.global_step)

        def on_step_end(self, args, state, control, **kw):
            step = state.global_step
            if step == rl.max_steps:
                control.should_save = True  # a kill after this point never retrains the run
            if step in eval_at:
                t0 = time.time()
                evaluate_live(step)
                self.clock.pause(time.time() - t0)  # step times exclude evaluation

        def on_log(self, args, state, control, logs=None, **kw):
            if not place.main or not logs or "reward" not in logs:
                return
            step = state.global_step
            nums = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float))}
            run.log_metrics({f"train/{k}": v for k, v in nums.items()}, step)
            run.append({"kind": "train", "step": step, "mean_step_seconds": self.clock.rate(step),
                        **{k: nums[k] for k in nums if k in STEP_KEYS or k.startswith("attempts/")}})
            samples = reward.take_recent()
            if samples:
                run.append({"kind": "samples", "step": step, "samples": samples})
            kl = f" kl {nums['kl']:.4f}" if "kl" in nums else ""
            if "attempts/mean" in nums:
                kl += f" attempts {nums['attempts/mean']:.2f}"
            run.log(f"step {step}/{rl.max_steps} reward {nums['reward']:.3f} correct "
                    f"{nums.get('verdict/correct', float('nan')):.3f}{kl} len "
                    f"{nums.get('completions/mean_length', 0):.0f} | {self.clock.rate(step):.1f} s/step | "
                    f"ETA {self.clock.eta(step, rl.max_steps)}")

    if rl.algorithm == "grpo":
        from trl import GRPOTrainer as Trainer
    else:
        from trl import RLOOTrainer as Trainer
    reward = VerifierReward(cfg.task, keep=rl.log_completions, episode_reward=rl.episode_reward, gamma=rl.gamma,
                            columns=tuple(c for c in dataset.column_names if c != "prompt"))
    extra = {}
    if episodes:  # whole multi-attempt episodes, feedback turns masked out of the loss (GRPO only: see config)
        from raysweep.train.episodes import EpisodeRollout, prompt_key

        hands = {prompt_key(p): (c, r, t) for p, c, r, t in
                 zip(dataset["prompt"], dataset["cards"], dataset["rule"], dataset["target"])}
        extra["rollout_func"] = EpisodeRollout(cfg.task, tokenizer, hands, answer_tokens, budget)
    trainer = Trainer(model=model, reward_funcs=[reward], args=args, train_dataset=dataset,
                      processing_class=tokenizer, callbacks=[RLCallback()], **extra)
    holder["trainer"] = trainer
    trainer.remove_callback(PrinterCallback)
    t0 = time.time()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    train_seconds = time.time() - t0
    if rl.max_steps in eval_at:  # resumed from the final trainer state, killed before its evaluation
        evaluate_live(rl.max_steps)

    trainer.save_model(str(final))  # all ranks (ZeRO-3 gathers the weights)
    barrier()
    if place.main:
        tokenizer.save_pretrained(final)
        update = measure_update(run, cfg, job, rdir)
        evals = {r["step"]: r["eval"] for r in T.read_results(rdir) if r.get("kind") == "eval"}
        run.append({"kind": "done", "train_seconds": train_seconds, "max_steps": rl.max_steps})
        T.write_json_atomic(final / "manifest.json", {
            "kind": "rl", "run_id": job["run_id"], "algorithm": rl.algorithm, "step": rl.max_steps,
            "parent": {"path": job["start_path"], "manifest": job.get("start_manifest")},
            "start_identity": job["start_identity"], "base_model": cfg.model.name, "config_digest": cfg.digest(),
            "eval_key": eval_key(cfg), "eval": evals.get(rl.max_steps), "eval_start": evals.get(0),
            "update": update, "created": time.time(),
        })
        run.log(f"finished in {train_seconds:.0f}s: {final}")
    run.finish_tracking("reward")
    barrier()
    return {"final": str(final)} if place.main else None


def measure_update(run: _RLRun, cfg, job: dict, rdir: Path) -> dict | None:
    """RL update / SFT drift of this run (:mod:`raysweep.spectral.update`), stored beside it and logged; a failure
    (a base that cannot be read) is reported and leaves the run finished without it."""
    from raysweep.spectral.update import base_of, cell_update

    t0 = time.time()
    try:
        u = cell_update(rdir, base_of(cfg, job), job["start_path"], cfg.spectral, cfg.boundary.update_angles)
    except Exception as exc:  # noqa: BLE001 - the run's result stands; the report says the measure is missing
        run.log(f"RL update / SFT drift not measured: {type(exc).__name__}: {exc}")
        return None
    ratio = "n/a (SFT had not moved the weights)" if u["ratio"] is None else f"{u['ratio']:.3f}"
    angle = f", principal angle to the base {u['angle_change']:+.3f} deg" if "angle_change" in u else ""
    run.log(f"RL update / SFT drift {ratio} (RL {u['rl_update']:.4f}, SFT {u['sft_drift']:.4f}{angle}; "
            f"{time.time() - t0:.1f}s)")
    run.log_metrics({f"update/{k}": float(u[k]) for k in ("ratio", "rl_update", "sft_drift", "angle_change", "angle_rl")
                     if u.get(k) is not None}, cfg.rl.max_steps)
    return u


def main(argv: list[str] | None = None) -> int:
    return job_file_main(rl_worker, "rl", argv)


if __name__ == "__main__":
    sys.exit(main())
