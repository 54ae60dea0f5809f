"""What a run learns from its training dataset is kept in RUN/training/ and reused only under the same key."""

import io
import json
import pickle
import shutil

import pandas as pd
import pytest
import sklearn
from _report_build import micro_data

from fraudkit.data.signed import read_signed, write_signed
from fraudkit.pipeline.context import RunContext
from fraudkit.pipeline.progress import Progress
from fraudkit.pipeline.score import score_dataset
from fraudkit.pipeline.training import load_training, training_key

STAGES = ("behaviour", "graph")


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    root = tmp_path_factory.mktemp("worlds")
    (root / "data").symlink_to(micro_data(0))       # the session's micro worlds (read only), simulated once
    (root / "train").symlink_to(micro_data(1000))
    return root / "data", root / "train"


@pytest.fixture(scope="module")
def first(worlds, tmp_path_factory):
    data, train = worlds
    out = tmp_path_factory.mktemp("runs") / "first"
    return score_dataset(data, out, stages=STAGES, seed=0, train=train)


def _tables(run):
    return {p.relative_to(run): pd.read_parquet(p) for p in sorted(run.rglob("*.parquet"))}


def test_a_trained_run_keeps_what_it_learned(first, worlds):
    folder = first.run_dir / "training"
    key = json.loads((folder / "key.json").read_text())
    assert key["stages"] == list(STAGES) and key["seed"] == 0 and key["train_fingerprint"]
    scores = pd.read_parquet(folder / "scores.parquet")
    assert set(scores["entity_type"]) == {"account"} and {"behaviour", "graph", "rules"} <= set(scores["stage"])
    feats = pd.read_parquet(folder / "features.parquet")
    assert len(feats) == len(pd.read_parquet(worlds[1] / "accounts.parquet"))
    assert not (folder / "groups.parquet").exists()  # no group stage, no association classifier
    saved = read_signed(folder / "models.signed")  # this user's signature
    models = saved["models"]
    assert saved["scikit_learn"] == sklearn.__version__
    assert list(models) == ["logistic", "boosting"] and all(m.n_training_ == len(feats) for m in models.values())


def test_reusing_an_earlier_run_gives_the_same_run_without_the_training_pass(first, worlds, tmp_path):
    data, train = worlds
    again = score_dataset(data, tmp_path / "again", stages=STAGES, seed=0, train=train, reuse=first.run_dir)
    assert any("the training pass was not repeated" in n for n in again.notes)
    a, b = _tables(first.run_dir), _tables(again.run_dir)
    assert a.keys() == b.keys()
    for name in a:  # DuckDB's parallel float sums may differ in the last bit from run to run
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=False, rtol=1e-9, obj=str(name))
    ma, mb = (json.loads((r / "manifest.json").read_text()) for r in (first.run_dir, again.run_dir))
    assert ma["operating_point"] == mb["operating_point"]


def test_another_seed_or_stage_set_is_not_reused(first, worlds, tmp_path):
    data, train = worlds
    other = score_dataset(data, tmp_path / "other", stages=STAGES, seed=1, train=train, reuse=first.run_dir)
    assert not any("the training pass was not repeated" in n for n in other.notes)
    # the models' training features depend on the training data only: those are reused
    assert any("training: reused from the run" in n and "training features" in n for n in other.notes)


def test_the_key_names_everything_the_training_pass_depends_on(worlds):
    from fraudkit.data.dataset import load_dataset

    train = load_dataset(worlds[1])
    base = training_key(train, stages=STAGES, context=RunContext(seed=0))
    assert training_key(train, stages=STAGES, context=RunContext(seed=0)) == base
    for ctx, stages in ((RunContext(seed=1), STAGES), (RunContext(seed=0, target_precision=0.8), STAGES),
                        (RunContext(seed=0, graph={"lp_alpha": 0.5}), STAGES), (RunContext(seed=0), ("graph",))):
        assert training_key(train, stages=stages, context=ctx) != base
    assert load_training(None, base).source is None


def test_outputs_hold_no_wall_clock(first, worlds):
    run = first.run_dir
    assert not (run / "graph" / "timings.parquet").exists()
    man = json.loads((run / "manifest.json").read_text())
    assert man["stage_timings"]["graph"][-1]["step"] == "total"
    pool = pd.read_parquet(run / "graph" / "seed_pool.parquet")
    end = max(pd.read_parquet(worlds[0] / f"{t}.parquet", columns=["ts"])["ts"].max()
              for t in ("interactions", "orders", "logins", "coupon_claims"))
    assert len(pool) and (pool["first_seen"] == end + pd.Timedelta(microseconds=1)).all()
    assert (pool["last_seen"] == pool["first_seen"]).all()


def test_decide_from_decides_only_later_events_and_scores_accounts_the_same(first, worlds, tmp_path):
    data, train = worlds
    dec = pd.read_parquet(first.run_dir / "decisions.parquet")
    start = dec["ts"].sort_values().iloc[len(dec) // 2]
    part = score_dataset(data, tmp_path / "part", stages=STAGES, seed=0, train=train, reuse=first.run_dir,
                         decide_from=start)
    d2 = pd.read_parquet(part.run_dir / "decisions.parquet")
    assert (d2["ts"] >= start).all()
    later = dec[dec["ts"] >= start].reset_index(drop=True)
    pd.testing.assert_frame_equal(d2.reset_index(drop=True), later)
    pd.testing.assert_frame_equal(pd.read_parquet(part.run_dir / "accounts.parquet"),
                                  pd.read_parquet(first.run_dir / "accounts.parquet"))


GROUPED = ("behaviour", "group")


def _score_watched(data, out, train, **kw):
    """score_dataset with its progress lines captured: the run and the steps it ran."""
    lines = io.StringIO()
    run = score_dataset(data, out, stages=GROUPED, seed=0, train=train, progress=Progress(stream=lines), **kw)
    return run, lines.getvalue()


@pytest.fixture(scope="module")
def grouped(worlds, tmp_path_factory):
    data, train = worlds
    return _score_watched(data, tmp_path_factory.mktemp("runs") / "grouped", train)


def test_reuse_takes_the_fitted_models_and_the_association_groups(grouped, worlds, tmp_path):
    data, train = worlds
    first, first_lines = grouped
    groups = pd.read_parquet(first.run_dir / "training" / "groups.parquet")
    assert len(groups) and set(groups["label"]) == {0, 1}
    assert "behaviour models: fit on the training data: done" in first_lines
    assert "association classifier: labelled groups of the training data: done" in first_lines
    again, lines = _score_watched(data, tmp_path / "again", train, reuse=first.run_dir)
    assert "behaviour models: fit" not in lines and "labelled groups of the training data" not in lines
    assert "the training pass was not repeated" in " ".join(again.notes)
    a, b = _tables(first.run_dir), _tables(again.run_dir)
    assert a.keys() == b.keys()
    for name in a:  # DuckDB's parallel float sums may differ in the last bit from run to run
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=False, rtol=1e-9, obj=str(name))


class _Planted:
    """Unpickling it would write ``path``: a stand-in for code a hostile pickle runs."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_models_file_not_signed_by_this_user_is_refused_and_the_models_fitted_again(grouped, worlds, tmp_path):
    data, train = worlds
    first = grouped[0]
    planted = tmp_path / "planted"
    shutil.copytree(first.run_dir, planted)
    marker = tmp_path / "ran"
    signed = planted / "training" / "models.signed"
    signed.write_bytes(signed.read_bytes()[:32] + pickle.dumps(_Planted(marker)))  # a real tag, other content
    again, lines = _score_watched(data, tmp_path / "again", train, reuse=planted)
    assert not marker.exists()
    assert any(n.startswith("training: models fitted again:") and "signature does not match" in n
               for n in again.notes)
    assert "behaviour models: fit on the training data: done" in lines
    pd.testing.assert_frame_equal(pd.read_parquet(again.run_dir / "accounts.parquet"),
                                  pd.read_parquet(first.run_dir / "accounts.parquet"))
    # signed, but by another scikit-learn version: fitted again too
    write_signed({"scikit_learn": "0.0", "models": read_signed(first.run_dir / "training" / "models.signed")["models"]},
                 signed)
    other = _score_watched(data, tmp_path / "other", train, reuse=planted)[0]
    assert any("models fitted again:" in n and "written with scikit-learn 0.0" in n for n in other.notes)
