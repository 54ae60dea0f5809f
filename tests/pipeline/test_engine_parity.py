"""``fraudkit score --engine spark`` gives the run ``--engine duckdb`` gives (issue 14).

The micro world is scored once on each engine (Spark: a local session of one core), with a second micro world
as training data (on DuckDB, as its size chooses): every file of the run directory is compared. With the training
data on Spark too (each dataset in its own Spark session: their temporary views share names) the run is started
once more and stopped once it has the training features, which are compared. Features computed by float sums
and averages, whose order of addition differs between the engines, agree to a relative 1e-12 (measured: at most
2e-15, a few units in the last place); everything else — rule hits, scores, flags, decisions, community
partitions, device clusters, seed pool — is equal.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fraudkit.cli import main
from fraudkit.data.dataset import load_dataset
from fraudkit.pipeline.score import score_dataset
from fraudkit.pipeline.stages.behaviour import training_data

pytestmark = pytest.mark.slow(170)  # about 170 s in all here: the file starts early (tests/conftest.py)

FLOAT_RTOL = 1e-12


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory):
    from _report_build import micro_data

    data, train = micro_data(), micro_data(seed=1000)
    out = tmp_path_factory.mktemp("engines")
    duck = score_dataset(data, out / "duckdb", engine="duckdb", train=train)
    # the session's Spark (getOrCreate); the training data on DuckDB, as its size chooses (the training data on
    # Spark: test_training_data_on_spark_gives_duckdbs_training_features, behaviour stage only)
    sp = score_dataset(data, out / "spark", engine="spark", train=train)
    return duck, sp


@pytest.mark.spark
def test_spark_run_matches_duckdb_run(runs):
    duck, sp = runs
    assert sp.stages == duck.stages == ("behaviour", "group", "graph")
    assert sp.n_flagged == duck.n_flagged and sp.n_decisions == duck.n_decisions
    files = sorted(p.relative_to(duck.run_dir) for p in duck.run_dir.rglob("*.parquet"))
    assert files == sorted(p.relative_to(sp.run_dir) for p in sp.run_dir.rglob("*.parquet"))
    assert {"features/account.parquet", "decisions.parquet", "scores.parquet", "rules/hits.parquet",
            "graph/communities.parquet", "group/device_clusters.parquet"} <= {str(f) for f in files}
    for f in files:
        a, b = pd.read_parquet(duck.run_dir / f), pd.read_parquet(sp.run_dir / f)
        assert list(a.columns) == list(b.columns) and len(a) == len(b), f
        if str(f).startswith("features/") or str(f) == "training/features.parquet":  # the feature tables
            pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=FLOAT_RTOL, atol=0, obj=str(f))
        else:
            pd.testing.assert_frame_equal(a, b, check_exact=True, obj=str(f))


@pytest.mark.spark
def test_spark_run_computes_features_on_spark_and_says_where(runs):
    duck, sp = runs
    a = pd.read_parquet(duck.run_dir / "features" / "account.parquet")
    b = pd.read_parquet(sp.run_dir / "features" / "account.parquet")
    num = a.select_dtypes("number").columns
    # the float features are not copied from one engine: some differ in the last bits, none by more
    diff = ~np.isclose(a[num], b[num], rtol=0, atol=0, equal_nan=True)
    assert 0 < diff.sum() and np.allclose(a[num], b[num], rtol=FLOAT_RTOL, atol=0, equal_nan=True)
    man_d = json.loads((duck.run_dir / "manifest.json").read_text())
    man_s = json.loads((sp.run_dir / "manifest.json").read_text())
    assert man_d["data"]["fingerprint"] == man_s["data"]["fingerprint"]
    assert man_d["train"] == man_s["train"] and man_s["data"]["fingerprint"] != man_s["train"]["fingerprint"]
    assert man_s["parameters"]["engine"] == "spark" and man_d["parameters"]["engine"] == "duckdb"
    # the graph stage's R(A,B) pairs came from the SQL on Spark (bit-identical to the in-memory pairs DuckDB's run used)
    assert any(n.startswith("graph: R(A,B) pairs generated on Spark") for n in man_s["notes"])
    # the graph stage's communities were computed on Spark, and equal DuckDB's (test_spark_run_matches_duckdb_run)
    assert any(n.startswith("graph: communities per connected component on Spark") for n in man_s["notes"])
    assert not any("on Spark" in n for n in man_d["notes"])


class _TrainingFeaturesComputed(Exception):
    """Raised by the spy on ``training_data``: the run has what the test compares and goes no further."""


@pytest.mark.spark
def test_training_data_on_spark_gives_duckdbs_training_features(runs, tmp_path, monkeypatch):
    from _report_build import micro_data

    import fraudkit.pipeline.score as scoring
    from fraudkit.pipeline.training import _LABEL

    duck, sp = runs
    man = json.loads((sp.run_dir / "manifest.json").read_text())  # the small training data went to DuckDB
    assert man["parameters"]["engine"] == "spark" and man["parameters"]["train_engine"] == "duckdb"
    assert any(n.startswith("training data loaded and transformed on DuckDB: its files hold") for n in man["notes"])
    # --train-engine spark: the run loads the training data on Spark and computes its features there. The spy
    # keeps what ``training_data`` returns and stops the run: what the run then does with the features (fit the
    # models, score) is what the first Spark run did, whose parity the tests above show. The data to score is
    # handed over loaded (on DuckDB): the first Spark run loaded it on Spark, and nothing here reads it
    seen = {}

    def spy(train_ds):
        seen["engine"] = train_ds.transform_dataset.engine.name  # what the manifest's train_engine records
        seen["features"] = training_data(train_ds)
        raise _TrainingFeaturesComputed

    monkeypatch.setattr(scoring, "training_data", spy)
    with pytest.raises(_TrainingFeaturesComputed):
        score_dataset(load_dataset(micro_data()), tmp_path / "on_spark", engine="spark", train=micro_data(seed=1000),
                      train_engine="spark", stages=("behaviour",))
    assert seen["engine"] == "spark" and not (tmp_path / "on_spark").exists()
    # the training features of Spark's SQL: DuckDB's run's (the engines add floats in their own order: the last bits)
    X, y = seen["features"]
    written = pd.read_parquet(duck.run_dir / "training" / "features.parquet")
    pd.testing.assert_frame_equal(X.reset_index(drop=True), written.drop(columns=_LABEL),
                                  check_exact=False, rtol=FLOAT_RTOL, atol=0)
    assert np.array_equal(y, written[_LABEL]) and 0 < y.sum() < len(y)


def test_training_engine_choice():
    from _report_build import micro_data

    from fraudkit.errors import FraudkitError
    from fraudkit.pipeline.score import LOCAL_TRAIN_BYTES, TrainingEngine, training_engine

    world = micro_data(seed=1000)
    assert training_engine(world, "duckdb") == TrainingEngine("duckdb")
    placed = training_engine(world, "spark")
    assert placed.engine == "duckdb" and "MiB, at most 1,024 MiB" in placed.note
    assert training_engine(world, "spark", "spark") == TrainingEngine("spark")
    assert training_engine(world, "spark", "duckdb").engine == "duckdb"
    # above the size, the run's engine
    import fraudkit.pipeline.score as scoring

    assert scoring.LOCAL_TRAIN_BYTES == LOCAL_TRAIN_BYTES == 1 << 30
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scoring, "LOCAL_TRAIN_BYTES", 100)
        assert training_engine(world, "spark") == TrainingEngine("spark")
    with pytest.raises(FraudkitError, match="--train-engine spark goes with --engine spark"):
        training_engine(world, "duckdb", "spark")
    with pytest.raises(FraudkitError, match="auto, duckdb or spark"):
        training_engine(world, "spark", "local")


def test_cli_score_spark_without_java_is_a_clear_error(tmp_path, monkeypatch):
    from _report_build import micro_data

    monkeypatch.setenv("PATH", str(tmp_path))  # no java on the path
    monkeypatch.delenv("JAVA_HOME", raising=False)
    res = CliRunner().invoke(main, ["score", str(micro_data()), "--out", str(tmp_path / "run"), "--engine", "spark"])
    assert res.exit_code != 0
    assert "the Spark engine needs" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["score", str(micro_data()), "--out", str(tmp_path / "run"),
                                    "--spark-master", "local[1]"])
    assert res.exit_code != 0 and "--spark-master goes with --engine spark" in res.output
    res = CliRunner().invoke(main, ["score", str(micro_data()), "--out", str(tmp_path / "run"),
                                    "--spark-conf", "spark.driver.memory=6g"])
    assert res.exit_code != 0 and "--spark-conf goes with --engine spark" in res.output
    res = CliRunner().invoke(main, ["score", str(micro_data()), "--out", str(tmp_path / "run"),
                                    "--train-engine", "spark"])
    assert res.exit_code != 0 and "--train-engine spark goes with --engine spark" in res.output
    res = CliRunner().invoke(main, ["score", str(micro_data()), "--out", str(tmp_path / "run"), "--engine", "spark",
                                    "--spark-conf", "spark.driver.memory"])
    assert res.exit_code != 0 and "--spark-conf takes KEY=VALUE, got 'spark.driver.memory'" in res.output
