import pandas as pd
import pytest

from fraudkit.data.dataset import Dataset
from fraudkit.identification.base import SCORE_COLUMNS
from fraudkit.pipeline.context import RunContext
from fraudkit.pipeline.stages.group import METHODS, run
from fraudkit.simulation import generate, load_scenario


@pytest.fixture(scope="module")
def micro():
    t = generate(load_scenario("micro"), seed=0)
    labels = t.pop("labels")
    return t, labels


def test_run_scores_every_account_and_catches_farms(micro):
    tables, labels = micro
    out = run(Dataset.from_tables(tables), context=RunContext(seed=0))
    s = out.scores
    assert list(s.columns) == list(SCORE_COLUMNS) and out.stage == "group"
    assert set(s["method"]) == set(METHODS)
    n = len(tables["accounts"])
    assert (s.groupby("method").size() == n).all()
    assert s["score"].between(0, 1).all()
    g = s[s["method"] == "group"].set_index("entity_id")
    assert (g["score"] >= s[s["method"] != "group"].groupby("entity_id")["score"].max().reindex(g.index)).all()
    acc = labels[labels.entity_type == "account"]
    farm = set(acc.loc[acc.typology == "device_farm", "entity_id"])
    flagged = set(g.index[g["flagged"]])
    assert len(farm & flagged) / len(farm) >= 0.9
    honest = set(acc.loc[acc.typology.str.startswith("honest"), "entity_id"])
    assert len(honest & flagged) / len(honest) <= 0.05
    assert {"device_clusters", "coaction_groups", "dense_blocks", "association_groups", "candidates"} \
        <= set(out.artifacts)
    c = out.artifacts["candidates"]
    assert list(c.columns) == ["account_id", "group_id", "kind", "score", "reason"] and (c["score"] >= 0.7).all()
    again = run(Dataset.from_tables(tables), context=RunContext(seed=0))
    pd.testing.assert_frame_equal(out.scores, again.scores)


def test_missing_tables_give_notes(micro):
    tables, _ = micro
    slim = {k: tables[k] for k in ("accounts", "interactions")}
    out = run(Dataset.from_tables(slim), context=RunContext(seed=0))
    assert any("no devices table" in n for n in out.notes)
    assert any("no orders table" in n for n in out.notes)
    assert "device_cluster" not in set(out.scores["method"])
    assert "device_clusters" not in out.artifacts


def test_association_classifier_trains_on_the_pipeline_training_dataset(micro):
    """The pipeline hands the training Dataset over as the context's ``train``: the association classifier trains
    on it; in the operating-point pass (``mode="train"``) the training dataset scores itself out-of-fold."""
    tables, labels = micro
    t1 = generate(load_scenario("micro"), seed=1)
    train = Dataset.from_tables(t1)
    assert train.labels is not None
    out = run(Dataset.from_tables(tables), context=RunContext(seed=0, train=train))
    assert any(n.startswith("association classifier trained on the training dataset") for n in out.notes)
    a = out.artifacts["association_groups"]
    assert a["classifier"].notna().all() and a["classifier"].between(0, 1).all()
    # the training pass: same scale, out-of-fold (an in-sample forest would score its positives ~1)
    tp = run(train, context=RunContext(seed=0, mode="train"))
    assert any("scored out-of-fold" in n for n in tp.notes)
    b = tp.artifacts["association_groups"]
    assert b["classifier"].notna().all()
    # exact seeded figures
    assert len(a) == 21 and len(b) == 15
    assert int((a["classifier"] > 0.5).sum()) == 12 and int((b["classifier"] > 0.5).sum()) == 8
    # without training data: unsupervised only, the labels of the scored dataset are not read
    plain = run(Dataset.from_tables({**tables, "labels": labels}), context=RunContext(seed=0))
    assert plain.artifacts["association_groups"]["classifier"].isna().all()


def test_dense_blocks_are_scored_against_their_members_degrees(micro):
    """FRAUDAR's densest blocks are cores of heavy honest users; the lockstep blocks it finds after them are
    sparser than the whole graph (the old density-ratio score never passed 0.5) but far beyond what their
    members' degrees predict: those are flagged, the honest cores are not."""
    tables, labels = micro
    out = run(Dataset.from_tables(tables), context=RunContext(seed=0))
    s = out.scores[out.scores["method"] == "dense_subgraph"].set_index("entity_id")
    acc = labels[labels.entity_type == "account"].drop_duplicates("entity_id").set_index("entity_id")["typology"]
    ty = acc.reindex(s.index[s["flagged"]]).fillna("unlabelled")
    from fraudkit.data.contract import FRAUD_TYPOLOGIES

    assert len(ty) and ty.isin(FRAUD_TYPOLOGIES).all()
    blocks = out.artifacts["dense_blocks"]
    assert {"lift", "excess_share"} <= set(blocks.columns)
    # the first (densest) block is an honest heavy core, near what its degrees predict
    first = blocks[blocks["block_id"] == 0].iloc[0]
    assert first["lift"] < 2 and first["excess_share"] < 0.2
    # exact seeded figures
    assert ty.value_counts().to_dict() == {"device_farm": 15, "offline_script": 12, "crowd_engagement": 8}


def test_thresholds_are_the_estimators_and_the_context_overrides_them(micro):
    """Each method flags above its detector's fitted ``threshold_`` (device clusters and co-action 0.5, the
    association network 0.6) or the ``dense_threshold`` parameter; ``RunContext(group=...)`` sets them."""
    from fraudkit.errors import FraudkitError

    tables, _ = micro
    ds = Dataset.from_tables(tables)
    out = run(ds, context=RunContext(seed=0))
    s = out.scores
    for method, thr in (("device_cluster", 0.5), ("coaction", 0.5), ("dense_subgraph", 0.5), ("association", 0.6)):
        m = s[s["method"] == method]
        assert (m["flagged"] == (m["score"] > thr)).all(), method
        assert m["flagged"].any(), method
    strict = run(ds, context=RunContext(seed=0, group={
        "device_cluster": {"min_samples": 3, "eps": 0.8, "threshold": 1.0}, "dense_threshold": 1.0,
        "coaction": {"min_group_size": 5, "min_jaccard": 0.3, "min_targets": 2, "threshold": 1.0},
        "association": {"window": "1D", "max_component_size": 200, "min_group_size": 3, "threshold": 1.0}}))
    assert not strict.scores["flagged"].any()
    pd.testing.assert_series_equal(strict.scores["score"], s["score"])  # thresholds move flags, not scores
    with pytest.raises(FraudkitError, match="unknown group stage parameter.*threshold.*dense_threshold"):
        run(ds, context=RunContext(group={"threshold": 0.5}))
