"""The ``fraudkit`` command as a careful and as a hostile user meets it: nothing lost, no raw traceback.

Each case runs the real command on a small simulated world (``micro``) or a corrupted copy of it and checks the
exit code, that the message names the cause and the fix, and that no input was deleted.
"""

from __future__ import annotations

import errno
import shutil
import time
from pathlib import Path

import pytest
from _report_build import micro_data
from click.testing import CliRunner

from fraudkit import cli
from fraudkit.cli import main


def _run(*args):
    t = time.perf_counter()
    r = CliRunner().invoke(main, [str(a) for a in args])
    r.elapsed = time.perf_counter() - t
    return r


def _no_traceback(r):
    assert "Traceback" not in r.output and r.exc_info is not None and r.exc_info[0] is SystemExit, r.output


@pytest.fixture()
def data(tmp_path):
    d = tmp_path / "data"
    shutil.copytree(micro_data(), d)
    return d


def _files(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_score_into_its_own_input_is_refused_and_the_input_kept(data):
    before = _files(data)
    r = _run("score", data, "--out", data, "--stages", "behaviour")
    assert r.exit_code == 2 and "an output may never be an input" in r.output, r.output
    _no_traceback(r)
    assert _files(data) == before
    r = _run("score", data, "--out", data / "run", "--stages", "behaviour")
    assert r.exit_code == 2 and "is inside the input" in r.output
    assert _files(data) == before


@pytest.mark.parametrize("command", ["score", "simulate"])
def test_a_folder_with_other_files_is_not_replaced_without_force(data, tmp_path, command):
    out = tmp_path / "F"
    out.mkdir()
    (out / "thesis.txt").write_text("years of work")
    args = (["score", data, "--stages", "behaviour"] if command == "score"
            else ["simulate", "--scenario", "micro", "--seed", "3", "--quiet"])
    r = _run(*args, "--out", out)
    assert r.exit_code == 2 and "thesis.txt" in r.output and "--force" in r.output, r.output
    assert (out / "thesis.txt").read_text() == "years of work"
    assert "refused" in _run(command, "--help").output


def test_rescoring_replaces_the_earlier_run(data, tmp_path):
    out = tmp_path / "run"
    assert _run("score", data, "--out", out, "--stages", "behaviour").exit_code == 0
    first = (out / "accounts.parquet").read_bytes()
    r = _run("score", data, "--out", out, "--stages", "behaviour")
    assert r.exit_code == 0, r.output
    assert (out / "accounts.parquet").read_bytes() == first


def test_quarantine_into_the_data_is_refused(data):
    before = _files(data)
    r = _run("validate", data, "--quarantine", data)
    assert r.exit_code == 2 and "an output may never be an input" in r.output, r.output
    _no_traceback(r)
    assert _files(data) == before


def test_evaluate_on_a_dataset_says_what_it_needs(data):
    r = _run("evaluate", data)
    assert r.exit_code == 2 and "not a run directory" in r.output and "fraudkit score" in r.output
    _no_traceback(r)


@pytest.mark.parametrize("name,text", [
    ("bomb.yaml", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                  "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                  "rules: [{id: r, condition: '1 > 0', score: 1, action: flag}]\n"),
    ("latin1.yaml", None),
    ("deep.yaml", "rules:\n- id: deep\n  condition: '" + "(" * 10000 + "a" + ")" * 10000 + "'\n  score: 1\n"
                  "  action: flag\n"),
    ("digits.yaml", "rules:\n- id: big\n  condition: 'n_devices > " + "9" * 5001 + "'\n  score: 1\n"
                    "  action: flag\n"),
])
def test_hostile_rule_files_fail_fast_with_a_message(tmp_path, name, text):
    path = tmp_path / name
    if text is None:
        path.write_bytes("rules:\n- id: caf\xe9\n  condition: '1 > 0'\n".encode("latin-1"))
    else:
        path.write_text(text)
    r = _run("rules", "check", path)
    assert r.exit_code == 2, r.output
    _no_traceback(r)
    assert r.elapsed < 10
    message = r.output.lower()
    assert {"bomb.yaml": "aliases", "latin1.yaml": "not utf-8", "deep.yaml": "characters",
            "digits.yaml": "characters"}[name] in message, r.output
    assert len(r.output) < 2000


def test_an_oversized_rule_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("rules:\n" + "# padding\n" * 200_000)
    r = _run("rules", "check", path)
    assert r.exit_code == 2 and "at most 1,000,000" in r.output, r.output


@pytest.mark.parametrize("err,expect", [(errno.ENOSPC, "free disk space"), (errno.EACCES, "may write to"),
                                        (errno.EROFS, "read-only")])
def test_system_refusals_are_a_message_with_a_fix(data, tmp_path, monkeypatch, err, expect):
    def refuse(*a, **k):
        raise OSError(err, "refused", str(tmp_path / "run" / "accounts.parquet"))

    monkeypatch.setattr(cli.scoring, "score_dataset", refuse)
    r = _run("score", data, "--out", tmp_path / "run")
    assert r.exit_code == 1 and expect in r.output and "accounts.parquet" in r.output, r.output
    _no_traceback(r)


def test_a_full_disk_under_duckdb_is_a_message_with_a_fix(data, tmp_path, monkeypatch):
    import duckdb

    def full(*a, **k):  # what DuckDB raised when /tmp filled up while it spilled the large world's feature SQL
        raise duckdb.IOException('IO Error: Could not write file "/tmp/fraudkit-duckdb/duckdb_temp_storage_'
                                 'DEFAULT-1.tmp": No space left on device')

    monkeypatch.setattr(cli.scoring, "score_dataset", full)
    r = _run("score", data, "--out", tmp_path / "run")
    assert r.exit_code == 1 and "free disk space" in r.output and "FRAUDKIT_DUCKDB_TEMP_DIRECTORY" in r.output
    assert "duckdb_temp_storage" in r.output and "unexpected" not in r.output, r.output
    _no_traceback(r)


def test_unexpected_errors_are_a_message_and_debug_shows_the_traceback(data, tmp_path, monkeypatch):
    def broken(*a, **k):
        raise KeyError("data")

    monkeypatch.setattr(cli.scoring, "score_dataset", broken)
    r = _run("score", data, "--out", tmp_path / "run")
    assert r.exit_code == 1 and "unexpected KeyError" in r.output and "--debug" in r.output
    _no_traceback(r)
    r = _run("--debug", "score", data, "--out", tmp_path / "run")
    assert r.exit_code == 1 and isinstance(r.exception, KeyError)


def test_a_second_score_into_the_same_folder_is_refused_while_the_first_runs(data, tmp_path):
    from fraudkit.data.atomic import atomic_directory

    out = tmp_path / "run"
    with atomic_directory(out, kind="run") as tmp:  # the first `fraudkit score`, still writing
        (tmp / "accounts.parquet").write_text("first")
        r = _run("score", data, "--out", out, "--stages", "behaviour")
        assert r.exit_code == 2 and "another fraudkit process is writing" in r.output, r.output
    assert (out / "accounts.parquet").read_text() == "first"


def test_score_shows_each_stage_on_stderr_and_quiet_shows_none(data, tmp_path):
    r = _run("score", data, "--out", tmp_path / "run", "--stages", "behaviour,graph")
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("[fraudkit score ")]
    for step in ("load and validate the data", "load and validate: the data",
                 "load and validate: entity resolution (addresses, phones)",
                 "load and validate: list weights (how widely listed resources are shared)",
                 "behaviour features (DuckDB SQL)",
                 "behaviour stage", "graph stage",
                 "rules on every entity", "decisions", "write the run directory"):
        assert any(f"score · {step}: started" in ln for ln in lines), (step, r.stderr)
        assert any(f"score · {step}: done" in ln for ln in lines), (step, r.stderr)
    assert any("accounts" in ln and "done" in ln for ln in lines)
    assert "\r" not in r.stderr  # not a terminal: plain lines, no animation
    assert "[fraudkit score" not in r.stdout and "run written to" in r.stdout
    q = _run("score", data, "--out", tmp_path / "run", "--stages", "behaviour,graph", "--quiet")
    assert q.exit_code == 0, q.output
    assert "[fraudkit" not in q.stderr and "run written to" in q.stdout


def test_score_with_train_shows_the_training_pass(data, tmp_path):
    r = _run("score", data, "--out", tmp_path / "run", "--stages", "behaviour", "--train", micro_data(seed=1000))
    assert r.exit_code == 0, r.output
    for line in ("score · behaviour models: training features of the training data: done",
                 "train · operating point: score the training data with every stage: started",
                 "train · behaviour stage: done", "train · rules: done"):
        assert line in r.stderr, (line, r.stderr)


def test_simulate_defaults_to_seed_0_and_reports_progress(tmp_path):
    r = _run("simulate", "--scenario", "micro", "--out", tmp_path / "d")
    assert r.exit_code == 0, r.output
    assert "scenario micro (seed 0)" in r.stdout
    assert "micro · build the world (seed 0)" in r.stderr and "micro · events day by day" in r.stderr
    assert "\r" not in r.stderr
    q = _run("simulate", "--scenario", "micro", "--out", tmp_path / "d", "--quiet")
    assert q.exit_code == 0 and q.stderr == ""



class Py4JJavaError(Exception):
    """What pyspark raises for a failure in the JVM: the Java trace is in its text."""


@pytest.mark.parametrize("java,expect", [("java.lang.OutOfMemoryError: Java heap space",
                                          "Spark ran out of memory (java.lang.OutOfMemoryError in its JVM). "
                                          "Fix: give the driver more memory (--spark-conf spark.driver.memory="),
                                         ("java.io.IOException: broken pipe", "unexpected Py4JJavaError")])
def test_a_spark_failure_is_a_message_and_out_of_memory_says_how_to_give_it_more(data, tmp_path, monkeypatch,
                                                                                 java, expect):
    def broken(*a, **k):
        raise Py4JJavaError(f"An error occurred while calling o1965.parquet.\n: org.apache.spark.SparkException: "
                            f"Job aborted.\nCaused by: {java}")

    monkeypatch.setattr(cli.scoring, "score_dataset", broken)
    r = _run("score", data, "--out", tmp_path / "run")
    assert r.exit_code == 1 and expect in r.output, r.output
    _no_traceback(r)
