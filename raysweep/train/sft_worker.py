"""The SFT trunk's worker function: one data-parallel rank of TRL's SFTTrainer under DeepSpeed ZeRO.

It runs the same under Ray Train (``raysweep.train.launch``), under ``torchrun``, or as a plain process::

    torchrun --nproc-per-node 2 -m raysweep.train.sft_worker --job job.json

``job.json`` is what ``raysweep.train.sft.plan_job`` writes: the resolved config, the seed, the trunk
directory and the base model path. Every requested SFT length becomes a checkpoint
(``checkpoints/step-<k>``: HF weights + tokenizer + ``manifest.json``), evaluated on ID and OOD by all
ranks together; rank 0 writes results and MLflow. A rerun resumes from the trainer's last checkpoint
and skips every finished step and evaluation.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

from raysweep.train import trunk as T
from raysweep.eval_reuse import EvalStore, files_digest
from raysweep.tasks.protocol import task_of
from raysweep.train.distributed import Place, barrier, broadcast_object, job_file_main, plain_loading, setup
from raysweep.train.record import StageRecorder, StepClock, config_params, eval_key, eval_summary


class _Trunk(StageRecorder):
    """Checkpoint export, evaluation, results and MLflow for one trunk (shared by all ranks)."""

    def __init__(self, job: dict, cfg, place: Place, tdir: Path):
        super().__init__(cfg, place, tdir, f"[sft seed={job['seed']}]")
        self.job, self.tdir, self.seed = job, tdir, job["seed"]
        self.train_problems: dict = {}  # {'<rule>-train': its own SFT problems}, evaluated beside ID/OOD

    def start(self, data_hash: str) -> None:
        tags = {"raysweep.kind": "sft", "raysweep.trunk_id": self.job["trunk_id"], "raysweep.seed": str(self.seed),
                "raysweep.trunk_dir": str(self.tdir)}
        params = config_params(self.cfg, drop=("sft.seeds",))
        params.update({"seed": str(self.seed), "trunk_id": self.job["trunk_id"], "data_hash": data_hash})
        self.start_tracking(f"sft/seed={self.seed}", tags, params, self.job.get("parent_run_id"))

    # ------------------------------------------------------------------ checkpoints (all ranks)
    def evaluate_and_seal(self, step: int, data_hash: str) -> None:
        """Evaluate the saved checkpoint at ``step`` on all ranks; rank 0 records it and writes the manifest."""
        from raysweep import models
        from raysweep.evaluate import evaluate

        barrier()
        cdir = T.checkpoint_dir(self.tdir, step)
        t0 = time.time()
        sets = list(task_of(self.cfg.task).eval_sets)
        # step 0 is the base, the same for every seed: its held-out evaluation is made once (raysweep.eval_reuse);
        # a trained checkpoint never repeats, so no other step is hashed or looked up
        store = EvalStore(self.cfg.output_dir, eval_key(self.cfg)) if step == 0 and self.place.main else None
        weights = files_digest(cdir) if store else None
        reused = store.lookup(weights, sets) if store else {}
        # every rank evaluates the same sets (evaluation is sharded across them)
        todo = broadcast_object([s for s in sets if s not in reused])
        with plain_loading():
            model, tok = models.load(str(cdir), device=self.place.device)
        fresh = evaluate(model, tok, self.cfg.task, self.cfg.eval, rules=todo, with_loss=True,
                         rank=self.place.rank, world=self.place.world, extra=self.train_problems)
        del model
        gc.collect()
        if self.place.main:
            if store:
                store.store(weights, {s: r for s, r in fresh.items() if s in sets}, str(cdir))
            results = {s: reused[s] if s in reused else fresh[s] for s in sets}
            results.update((name, r) for name, r in fresh.items() if name not in results)  # its own SFT problems
            if reused:
                self.log(f"step {step}: {', '.join(reused)} read from an evaluation of identical weights "
                         f"({store.root}, weights {weights[:12]})")
            T.write_json_atomic(cdir / "eval.json", {rule: {"summary": r.summary(), "records": r.records}
                                                      for rule, r in results.items()})
            self.record_eval(step, eval_summary(results), time.time() - t0, kind="checkpoint", path=str(cdir),
                             reused=sorted(reused))
            manifest = {
                "seed": self.seed, "step": step, "trunk_id": self.job["trunk_id"], "trunk_dir": str(self.tdir),
                "base_model": self.cfg.model.name, "base_model_path": self.job["model_path"],
                "data_hash": data_hash, "config_hash": self.job["trunk_id"], "config_digest": self.cfg.digest(),
                "eval_key": eval_key(self.cfg), "eval": eval_summary(results), "created": time.time(),
                "eval_reused": sorted(reused),
            }
            T.write_json_atomic(cdir / "manifest.json", manifest)
        barrier()


def _export_base(cdir: Path, model_path: str, place: Place) -> None:
    """Step 0 is the base model itself, saved as a checkpoint directory (rank 0)."""
    from transformers import AutoModelForCausalLM

    from raysweep.models import load_tokenizer

    if place.main:
        tok = load_tokenizer(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path, use_safetensors=True)
        model.save_pretrained(cdir, safe_serialization=True)
        tok.save_pretrained(cdir)
        del model


def _check_lengths(tokenizer, dataset, max_length: int) -> None:
    """Fail fast if any example would be truncated: a cut completion silently teaches a cut answer."""
    longest = 0
    if "input_ids" in dataset.column_names:
        longest = max(len(ids) for ids in dataset["input_ids"])
    for prompt, completion in (zip(dataset["prompt"], dataset["completion"]) if "prompt" in dataset.column_names
                               else ()):
        text = tokenizer.apply_chat_template(list(prompt) + list(completion), tokenize=False)
        longest = max(longest, len(tokenizer(text, add_special_tokens=False)["input_ids"]))
    if longest > max_length:
        raise ValueError(f"sft.max_length={max_length} would truncate SFT examples (the longest is {longest} tokens "
                         f"with this model's tokenizer and chat template): set sft.max_length >= {longest}")


def sft_worker(job: dict) -> dict | None:
    """Train (or resume) one SFT trunk on this rank. Returns the finished steps on rank 0."""
    from raysweep.config import RaysweepConfig

    cfg = RaysweepConfig.model_validate(job["config"])
    sft = cfg.sft
    place = setup(sft.use_gpu, threads=sft.cpus_per_worker)
    tdir = Path(job["trunk_dir"])
    tdir.mkdir(parents=True, exist_ok=True)
    trunk = _Trunk(job, cfg, place, tdir)

    import torch
    from transformers import AutoModelForCausalLM, TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    from raysweep.models import load_tokenizer
    from raysweep.train.deepspeed import deepspeed_config
    from raysweep.train.sft_data import examples_hash, sft_examples

    from raysweep.evaluate import train_set

    full = sft_examples(cfg, job["seed"])
    data_hash = examples_hash(full, sft.revision_share)
    trunk.train_problems = train_set(cfg.task, cfg.eval, full)
    dataset = full.select_columns(["prompt", "completion"])
    tokenizer = load_tokenizer(job["model_path"])
    if sft.revision_share:  # revision episodes: tokenized here, the loss on the expert answer only
        from datasets import Dataset

        from raysweep.train.turn_masks import tokenize_turns

        rows = [tokenize_turns(tokenizer, p, list(r) + list(c))
                for p, r, c in zip(full["prompt"], full["revision"], full["completion"])]
        dataset = Dataset.from_dict({k: [row[k] for row in rows] for k in ("input_ids", "completion_mask")})
        wrong = [len(r) // 2 for r in full["revision"] if r]
        trunk.log(f"{len(wrong)} of {len(rows)} examples are revision episodes (sft.revision_share), with "
                  f"{min(wrong, default=0)}-{max(wrong, default=0)} wrong answers before the expert's "
                  "(sft.revision_attempts)")
    _check_lengths(tokenizer, dataset, sft.max_length)  # before any work, not after the step-0 evaluation
    todo = [k for k in sft.checkpoints if k not in T.finished_steps(tdir)]
    if not todo:
        trunk.log(f"all checkpoints {list(sft.checkpoints)} already finished in {tdir}")
        return {"finished": sorted(T.finished_steps(tdir))} if place.main else None
    resume = T.latest_trainer_checkpoint(tdir)
    resume_step = int(resume.name.split("-")[1]) if resume else 0
    behind = [k for k in todo if 0 < k < resume_step]
    if behind:
        raise ValueError(
            f"sft.checkpoints: steps {behind} are before this trunk's saved training state (step {resume_step}); "
            "producing them would retrain a finished prefix. Drop them, or start a new trunk (another seed).")
    trunk.start(data_hash)
    trunk.log(f"trunk {tdir} | to do: steps {todo} | world {place.world} on {place.device}"
         + (f" | resuming from step {resume_step}" if resume else ""))
    if place.main and resume:
        T.append_result(tdir, {"kind": "resume", "from_step": resume_step, "todo": todo})

    if 0 in todo:
        _export_base(T.checkpoint_dir(tdir, 0), job["model_path"], place)
        trunk.evaluate_and_seal(0, data_hash)
        todo.remove(0)
    if not todo:
        trunk.finish_tracking("loss")
        return {"finished": sorted(T.finished_steps(tdir))} if place.main else None

    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    bf16 = sft.bf16(place.cuda)
    args = TRLSFTConfig(
        output_dir=str(tdir / "trainer"),
        max_steps=sft.max_steps,
        per_device_train_batch_size=sft.per_device_batch_size,
        gradient_accumulation_steps=sft.gradient_accumulation_steps,
        learning_rate=sft.learning_rate,
        lr_scheduler_type=sft.lr_scheduler,
        warmup_steps=sft.warmup_steps,
        weight_decay=sft.weight_decay,
        max_grad_norm=sft.max_grad_norm,
        logging_steps=sft.logging_steps,
        save_strategy="no",  # checkpoints are requested by the callback at exactly the SFT lengths
        save_total_limit=2,  # a damaged newest state falls back to the one before
        seed=job["seed"],
        data_seed=job["seed"],
        report_to=[],
        bf16=bf16,
        fp16=False,
        use_cpu=not place.cuda,
        ddp_backend=place.backend,
        deepspeed=deepspeed_config(sft.deepspeed),
        max_length=sft.max_length,
        completion_only_loss=True,
        packing=False,
        gradient_checkpointing=sft.gradient_checkpointing,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    # The model loads after the args (which register the DeepSpeed config), so ZeRO-3 partitions it as it loads.
    model = AutoModelForCausalLM.from_pretrained(job["model_path"], dtype=torch.bfloat16 if bf16 else torch.float32,
                                                 use_safetensors=True)

    todo_set = set(todo)
    holder: dict = {}

    class TrunkCallback(TrainerCallback):
        def __init__(self):
            self.clock = StepClock()

        def _seal(self, step: int) -> None:
            t0 = time.time()
            holder["trainer"].save_model(str(T.checkpoint_dir(tdir, step)))  # all ranks (ZeRO-3 gathers)
            trunk.evaluate_and_seal(step, data_hash)
            todo_set.discard(step)
            self.clock.pause(time.time() - t0)  # step times exclude checkpointing and evaluation

        def on_train_begin(self, args, state, control, **kw):
            self.clock.start(state.global_step)
            if state.global_step in todo_set:  # killed after the trainer saved this step, before it was sealed
                self._seal(state.global_step)

        def on_step_end(self, args, state, control, **kw):
            if state.global_step in todo_set:
                control.should_save = True

        def on_save(self, args, state, control, **kw):
            if state.global_step in todo_set:
                self._seal(state.global_step)

        def on_log(self, args, state, control, logs=None, **kw):
            if not place.main or not logs or "loss" not in logs:
                return
            step = state.global_step
            rec = {k: logs[k] for k in ("loss", "learning_rate", "grad_norm", "num_tokens") if k in logs}
            T.append_result(tdir, {"kind": "train", "step": step, **rec})
            trunk.log_metrics({f"train/{k}": v for k, v in rec.items()}, step)
            trunk.log(f"step {step}/{sft.max_steps} loss {logs['loss']:.4f} lr {logs.get('learning_rate', 0):.2e} | "
                      f"{self.clock.rate(step):.2f} s/step | ETA {self.clock.eta(step, sft.max_steps)}")

    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[TrunkCallback()])
    holder["trainer"] = trainer
    trainer.remove_callback(PrinterCallback)  # our callback prints progress; no raw log dicts
    t0 = time.time()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if place.main:
        T.append_result(tdir, {"kind": "done", "train_seconds": time.time() - t0, "max_steps": sft.max_steps})
    trunk.finish_tracking("loss")
    barrier()
    missing = [k for k in sft.checkpoints if k not in T.finished_steps(tdir)]
    if missing:
        raise RuntimeError(f"{trunk.tag} training ended without checkpoints {missing}")
    return {"finished": sorted(T.finished_steps(tdir))} if place.main else None


def main(argv: list[str] | None = None) -> int:
    return job_file_main(sft_worker, "sft", argv)


if __name__ == "__main__":
    sys.exit(main())
