"""The ``files`` task: its answer checkers (hostile completions included: never raise, never hang), reading and
checking data files (every bad-data case refused in one line, exit 2, before any work), held-out evaluation sets,
problem keys, and scoring through the reward TRL calls."""

import json
import time

import pytest

from raysweep.cli import main
from raysweep.config import ConfigError, load_config
from raysweep.tasks import checkers
from raysweep.tasks.protocol import task_of
from raysweep.train.rewards import VerifierReward

# ------------------------------------------------------------------------------------------ checkers


@pytest.mark.parametrize("completion,answer,verdict", [
    ("so the answer is 42", "42", "correct"),
    ("12 apples, then 7 more: 19", "19", "correct"),
    ("first 3, finally 4", "3", "wrong"),
    ("#### 1,000", "1000", "correct"),
    ("total 1,000 dollars", "1000", "correct"),
    ("half: 0.5", "1/2", "correct"),
    ("it is 1/2", "0.5", "correct"),
    ("3 / 4", "0.75", "correct"),
    ("about 1e3", "1000", "correct"),
    ("2.5E-1", "1/4", "correct"),
    (r"\boxed{\frac{1}{2}}", "0.5", "correct"),
    (r"\boxed{\dfrac{3}{4}} then 9", "3/4", "correct"),  # the box wins over a later number
    (r"\boxed{\boxed{7}}", "7", "correct"),
    (r"\boxed{x = 12}", "12", "correct"),
    (r"\boxed{1,000}", "1000", "correct"),
    ("#### 5\nbut really 6", "5", "correct"),  # the #### line wins
    ("-3", "-3", "correct"),
    ("−3", "-3", "correct"),  # a Unicode minus
    ("x = 3.0", "3", "correct"),
    ("no numbers here", "3", "malformed"),
    ("", "3", "malformed"),
    (r"\boxed{}", "3", "malformed"),
    ("1/0", "1", "malformed"),  # division by zero is no number
])
def test_numeric_reads_the_last_number_exactly(completion, answer, verdict):
    got, _, _ = checkers.numeric(completion, answer)
    assert got == verdict


HOSTILE = [
    "9" * 100_000,                                   # a huge number
    "1e999999999",                                   # an exponent that would eat the memory
    "1" + "0" * 5000 + "/" + "3" * 5000,             # a huge fraction
    "x" * 10_000,                                    # 10k characters of garbage
    "1," * 20_000,                                   # separators without groups
    "(" * 10_000 + "1" + ")" * 10_000,
    r"\boxed{" * 5000 + "3",                         # unclosed nested boxes
    r"\boxed{" * 200 + "3" + "}" * 200,              # deeply nested boxes
    "####" * 3000,
    "٣٤",                                            # Arabic-Indic digits
    "²³",                                            # superscripts (isdigit() but not int())
    "４２",                                           # fullwidth digits
    "\x00\ud800\uffff" * 1000,                       # control characters, a lone surrogate
    "1e5" * 5000,
    "1.2.3.4.5" * 2000,
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_every_checker_survives_hostile_completions(text):
    regex = checkers.regex_checker(r"(a+)+b")  # a pattern that backtracks exponentially without a limit
    for check in (checkers.numeric, checkers.exact, regex):
        t0 = time.time()
        verdict, answer, _ = check(text, "42")
        assert verdict in ("correct", "wrong", "malformed")
        assert answer is None or len(answer) <= 400
        assert time.time() - t0 < 3, check
    assert checkers.numeric("٣٤", "34")[0] == "malformed"  # only ASCII digits are numbers
    assert checkers.numeric("9" * 100_000, "9")[0] == "malformed"


def test_a_backtracking_regex_times_out_as_malformed():
    check = checkers.regex_checker(r"^(a+)+$")
    t0 = time.time()
    verdict, _, detail = check("a" * 40 + "!", "a")
    assert verdict == "malformed" and time.time() - t0 < 5


def test_exact_and_regex_compare_stripped_text():
    assert checkers.exact("  Paris \n", "Paris")[0] == "correct"
    assert checkers.exact("paris", "Paris")[0] == "wrong"
    assert checkers.exact("   ", "Paris")[0] == "malformed"
    check = checkers.regex_checker(r"Answer:\s*(\w+)")
    assert check("Answer: no\nAnswer: yes", "yes")[0] == "correct"  # the last match
    assert check("Answer: no", "yes")[0] == "wrong"
    assert check("nothing", "yes")[0] == "malformed"


@pytest.mark.parametrize("spec,says", [
    ("fuzzy", "is not a checker"),
    ("regex:(unclosed", "not a valid pattern"),
    ("regex:no group", "has no group"),
    ("python:nosuchmodule_xyz:check", "cannot import module 'nosuchmodule_xyz'"),
    ("python:json:no_such_function", "has no 'no_such_function'"),
    ("python:json", "not an import path"),
])
def test_a_bad_answer_spec_is_refused_naming_the_field(tmp_path, spec, says):
    data = _data(tmp_path)
    with pytest.raises(ConfigError, match="task.answer") as e:
        load_config(None, _cfg(data, answer=spec))
    assert says in str(e.value)


# ------------------------------------------------------------------------------------------ data files


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _data(tmp_path, n_eval=8, **extra):
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    files = {
        "sft": _write(d / "sft.jsonl", [{"prompt": f"{i}+1?", "completion": f"#### {i + 1}", "answer": str(i + 1)}
                                        for i in range(20)]),
        "rl": _write(d / "rl.jsonl", [{"prompt": f"{i}+2?", "answer": i + 2, "level": i % 3} for i in range(20)]),
        "id": _write(d / "id.jsonl", [{"prompt": f"{i}+1?", "answer": str(i + 1)} for i in range(100, 100 + n_eval)]),
        "ood": _write(d / "ood.jsonl", [{"prompt": f"{i}*2?", "answer": str(i * 2)} for i in range(n_eval)]),
    }
    files.update(extra)
    return files


def _cfg(files, **task):
    out = [f"task.kind=files", f"task.sft={files['sft']}", f"task.rl={files['rl']}",
           f"task.eval={json.dumps({'id': files['id'], 'ood': files['ood']})}", "eval.n=8"]
    return out + [f"task.{k}={v}" for k, v in task.items()]


def test_files_task_reads_rows_sets_keys_and_scores(tmp_path):
    cfg = load_config(None, _cfg(_data(tmp_path), system_prompt="Be brief."))
    task = task_of(cfg.task)
    assert task.eval_sets == ("id", "ood") and task.kind == "files"
    ev = task.eval_dataset("id", 8, 0)
    assert len(ev) == 8 and ev[0]["prompt"][0] == {"role": "system", "content": "Be brief."}
    row = ev[0]
    assert task.score("#### " + row["answer"], row).verdict == "correct"
    assert task.score("#### 99999", row).verdict == "wrong" and task.score("??", row).verdict == "malformed"
    assert task.key(row) == row["prompt"][-1]["content"]
    assert sorted(task.eval_dataset("id", 8, 1)["key"]) == sorted(ev["key"])  # all 8: the same problems
    rl = task.rl_dataset(5, 0)
    assert {"prompt", "answer", "level", "key"} <= set(rl.column_names) and rl[0]["answer"] == str(rl[0]["answer"])
    sft = task.sft_dataset(1000, 0)  # more than the file holds: every row, shuffled
    assert len(sft) == 20 and sft[0]["completion"][0]["role"] == "assistant"
    # the reward TRL calls: rows rebuilt from the dataset's columns, verdicts logged per step
    logged = {}
    reward = VerifierReward(cfg.task, columns=[c for c in rl.column_names if c != "prompt"])
    cols = {c: rl[c][:2] for c in rl.column_names if c != "prompt"}
    out = reward(prompts=rl["prompt"][:2], completions=[f"#### {rl['answer'][0]}", "nope"],
                 log_metric=lambda k, v: logged.__setitem__(k, v), **cols)
    assert out == [1.0, 0.0] and logged == {"verdict/correct": 0.5, "verdict/wrong": 0.0, "verdict/malformed": 0.5}


def test_keys_group_rows_into_problems_and_n_counts_problems(tmp_path):
    rows = [{"prompt": f"say {i} (v{v})", "answer": str(i), "key": f"p{i}"} for i in range(6) for v in range(2)]
    files = _data(tmp_path, id=_write(tmp_path / "keyed.jsonl", rows))
    cfg = load_config(None, _cfg(files)[:-1] + ["eval.n=4"])
    ev = task_of(cfg.task).eval_dataset("id", 4, 0)
    assert len(ev) == 8 and len(set(ev["key"])) == 4  # every row of 4 problems
    with pytest.raises(ConfigError, match=r"task.eval.id: .* holds 6 distinct problems, fewer than eval.n=7"):
        load_config(None, _cfg(files)[:-1] + ["eval.n=7"])


def test_rows_are_deduplicated_by_prompt(tmp_path):
    rows = [{"prompt": "same", "completion": "1"}, {"prompt": "same", "completion": "2"},
            {"prompt": "other", "completion": "3"}]
    files = _data(tmp_path, sft=_write(tmp_path / "dupes.jsonl", rows))
    task = task_of(load_config(None, _cfg(files)).task)
    assert sorted(c[0]["content"] for c in task.sft_dataset(10, 0)["completion"]) == ["1", "3"]


def test_identity_follows_content_not_paths(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    files = _data(tmp_path / "a")
    a = load_config(None, _cfg(files)).task.identity()
    b = load_config(None, _cfg(_data(tmp_path / "b"))).task.identity()
    assert a == b  # same bytes in other directories: the same trunks
    assert load_config(None, _cfg(files)).task.identity(exclude={"reward"}).keys() == a.keys() - {"reward"}
    _write(tmp_path / "a" / "data" / "rl.jsonl", [{"prompt": "other?", "answer": "1"}])
    assert load_config(None, _cfg(files)).task.identity() != a  # other data: other trunks and runs


# ------------------------------------------------------------------------------------------ bad data: exit 2


@pytest.fixture
def no_training(monkeypatch, tmp_path):
    """A tripwire: if a config got past validation, training or Ray would start and the test fails saying so."""
    import ray

    import raysweep.train.launch
    import raysweep.train.sft

    def tripwire(*args, **kwargs):
        raise AssertionError("training or Ray started before the config was refused")

    monkeypatch.setattr(raysweep.train.sft, "run_sft", tripwire)
    monkeypatch.setattr(raysweep.train.launch, "ensure_ray", tripwire)
    monkeypatch.setattr(ray, "init", tripwire)


def _bad(tmp_path, case):
    d = tmp_path / "bad"
    d.mkdir()
    if case == "missing-file":
        return _data(tmp_path, rl=str(d / "nope.jsonl")), "task.rl: file", "does not exist"
    if case == "row-without-field":
        rows = [{"prompt": "a", "completion": "b"}, {"prompt": "c"}]
        return _data(tmp_path, sft=_write(d / "s.jsonl", rows)), "task.sft", "row 2 has no 'completion'"
    if case == "row-without-prompt":
        return _data(tmp_path, id=_write(d / "i.jsonl", [{"question": "a", "answer": "1"}])), "task.eval.id", "no 'prompt'"
    if case == "not-json":
        (d / "x.jsonl").write_text("{not json\n")
        return _data(tmp_path, ood=str(d / "x.jsonl")), "task.eval.ood: cannot read", ""
    if case == "wrong-suffix":
        (d / "x.csv").write_text("prompt,answer\n")
        return _data(tmp_path, rl=str(d / "x.csv")), "task.rl", "not a .jsonl, .json or .parquet"
    if case == "eval-smaller-than-n":
        return _data(tmp_path, n_eval=5), "task.eval.id", "fewer than eval.n=8"
    if case == "train-eval-overlap":
        rows = [{"prompt": f"{i}+1?", "answer": str(i + 1)} for i in range(3, 11)]  # 3+1? .. 10+1?: in sft.jsonl
        return _data(tmp_path, id=_write(d / "i.jsonl", rows)), "8 prompt(s) of task.eval.id are also in a training", \
            "e.g. '3+1?', in task.sft"
    raise AssertionError(case)


BAD = ["missing-file", "row-without-field", "row-without-prompt", "not-json", "wrong-suffix", "eval-smaller-than-n",
       "train-eval-overlap"]


@pytest.mark.parametrize("case", BAD)
def test_bad_data_fails_in_one_line_with_exit_2_before_any_work(tmp_path, capsys, no_training, case):
    files, names, says = _bad(tmp_path, case)
    code = main(["run", *_cfg(files), f"output_dir={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.count("raysweep: error:") == 1, err
    message = err[err.index("raysweep: error:"):]
    assert names in message and says in message, message
    assert len([line for line in message.splitlines() if line.strip()]) <= 2, message  # the header and one line
    assert not (tmp_path / "out").exists()


def test_generalpoints_only_features_are_refused_for_files(tmp_path):
    files = _data(tmp_path)
    with pytest.raises(ConfigError, match="sft.revision_share: revision episodes are a GeneralPoints"):
        load_config(None, _cfg(files) + ["sft.revision_share=0.5"])
    with pytest.raises(ConfigError, match="task.attempts: unknown key"):
        load_config(None, _cfg(files) + ["task.attempts=3"])
    with pytest.raises(ConfigError, match=r"boundary.rule: 'far' is not evaluated; use one of the evaluation sets"):
        load_config(None, _cfg(files) + ["boundary.rule=far"])


def test_python_checker_gets_the_row_and_its_failures_are_malformed(tmp_path, monkeypatch):
    (tmp_path / "mycheck.py").write_text(
        "def check(completion, row):\n"
        "    if completion == 'boom':\n        raise RuntimeError('no')\n"
        "    if completion == 'none':\n        return None\n"
        "    if completion == 'half':\n        return 0.5\n"
        "    return completion.strip() == str(row['answer']) and row['level'] in (0, 1, 2)\n")
    monkeypatch.chdir(tmp_path)  # a user's module beside the config: the working directory is importable
    monkeypatch.setenv("PYTHONPATH", "")
    task = task_of(load_config(None, _cfg(_data(tmp_path), answer="python:mycheck:check")).task)
    row = task.rl_dataset(1, 0)[0]
    assert task.score(row["answer"], row).verdict == "correct"
    assert task.score("x", row).verdict == "wrong"
    assert task.score("boom", row).verdict == "malformed" and "RuntimeError" in task.score("boom", row).detail
    assert task.score("none", row).verdict == "malformed"
    half = task.score("half", row)
    assert half.verdict == "wrong" and half.reward == 0.5  # a float is the reward; correct needs full credit
    import os

    assert str(tmp_path) in os.environ["PYTHONPATH"]  # workers started later import it too


def test_parquet_files_read_like_json_lines(tmp_path):
    from datasets import Dataset

    files = _data(tmp_path)
    rows = [{"prompt": f"{i}*2?", "answer": str(i * 2)} for i in range(8)]
    Dataset.from_list(rows).to_parquet(str(tmp_path / "ood.parquet"))
    files["ood"] = str(tmp_path / "ood.parquet")
    task = task_of(load_config(None, _cfg(files)).task)
    assert sorted(task.eval_dataset("ood", 8, 0)["answer"], key=int) == [str(i * 2) for i in range(8)]
