import contextlib

import numpy as np
import pandas as pd
import pytest
from _jobs import Done, in_a_row, watched

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


def test_encoded_inputs_give_the_miners_results_on_the_tables_read_whole(micro):
    """The stage reads each miner's columns reduced in SQL (address codes, distinct account-device pairs,
    co-action rows); every miner gives exactly what it gives on the tables read whole, as the stage once did."""
    from fraudkit.identification.graph.association import AssociationNetwork
    from fraudkit.identification.group.clusters import CoActionMiner, DeviceClusterer
    from fraudkit.pipeline.stages.group import DEFAULTS, _USAGE_SOURCES, _association_training

    tables, _ = micro
    ds = Dataset.from_tables(tables)
    t1 = generate(load_scenario("micro"), seed=1)
    train = Dataset.from_tables(t1)
    out = run(ds, context=RunContext(seed=0, train=train))
    whole = {n: ds.to_pandas(n, columns=c) for n, c in _USAGE_SOURCES.items()}
    whole["accounts"] = ds.to_pandas("accounts", columns=["account_id", "registered_at", "phone"])
    whole["devices"] = ds.to_pandas("devices")
    inter = whole["interactions"]
    assert inter["ip"].nunique() > 100  # the addresses are many, the codes stand for them
    # association network: the same groups, features and scores
    an = AssociationNetwork(**DEFAULTS["association"], seed=0).fit(whole, **_association_training(ds, RunContext(
        seed=0, train=train), []))
    got = out.artifacts["association_groups"]
    pd.testing.assert_frame_equal(got.drop(columns=["members"]), an.features_, check_exact=True)
    # co-action groups on the interactions
    acts = inter[inter["action"].isin(DEFAULTS["coaction_actions"])]
    cm = CoActionMiner(**DEFAULTS["coaction"], seed=0).fit(acts)
    g = out.artifacts["coaction_groups"]
    g = g[g["source"] == "interactions"].drop(columns="source").reset_index(drop=True)
    pd.testing.assert_frame_equal(g.drop(columns=["group_id", "targets"]),
                                  cm.groups_.drop(columns=["group_id", "targets"]), check_exact=True)
    # device clusters: each account's device picked among equally scored ones by first use
    dc = DeviceClusterer(**DEFAULTS["device_cluster"]).fit(whole["devices"], pd.concat(
        [inter, whole["logins"].assign(action="login")], ignore_index=True))
    a = dc.account_scores(pd.concat([inter[["account_id", "device_id"]].drop_duplicates(),
                                     whole["logins"][["account_id", "device_id"]].drop_duplicates()]))
    s = out.scores[out.scores["method"] == "device_cluster"]
    s = s.set_index(s["entity_id"].astype(str))
    assert (s["score"] > 0).sum() == len(a) > 0
    assert s.loc[a["account_id"].astype(str), "score"].tolist() == a["score"].tolist()
    assert s.loc[a["account_id"].astype(str), "reason"].tolist() == a["reason"].tolist()


def test_account_devices_come_in_order_of_first_use():
    """The (account, device) pairs the device clusterer maps scores through: distinct, an account's devices in
    the order the tables read whole first show them (interactions, then logins; time; device id), which decides
    the device an account takes among equally scored ones."""
    from fraudkit.pipeline.stages.group import _account_devices

    t = pd.Timestamp("2024-01-02")
    h = pd.Timedelta(hours=1)
    acc = pd.DataFrame({"account_id": [1, 2], "registered_at": pd.to_datetime(["2024-01-01"] * 2),
                        "register_channel": "app", "phone": None})
    it = pd.DataFrame({"event_id": range(7), "ts": [t + 2 * h, t + 2 * h, t + 3 * h, t + h, t + 5 * h, t, t],
                       "account_id": [1, 1, 1, 2, 1, 2, 2], "device_id": [9, 5, 3, 4, 5, None, 8],
                       "ip": "1.2.3.4", "action": "like", "target_id": 7})
    lg = pd.DataFrame({"login_id": range(3), "account_id": [1, 1, 2], "device_id": [7, 3, 6], "ip": "1.2.3.4",
                       "ts": [t - h, t - h, t - h]})
    ds = Dataset.from_tables({"accounts": acc, "interactions": it, "logins": lg})
    whole = [ds.to_pandas("interactions", columns=["account_id", "device_id", "ip", "action", "target_id", "ts"]),
             ds.to_pandas("logins", columns=["account_id", "device_id", "ip", "ts"])]
    first_use = pd.concat([w[["account_id", "device_id"]].drop_duplicates() for w in whole]).dropna()
    first_use = first_use.drop_duplicates().astype("int64")
    got = _account_devices(ds)
    assert got.values.tolist() == [[1, 5], [1, 9], [1, 3], [1, 7], [2, 8], [2, 4], [2, 6]]
    assert got.values.tolist() == first_use.sort_values("account_id", kind="stable").values.tolist()


def test_usage_summary_in_sql_is_the_summary_of_the_stacked_rows(micro):
    """The association network's usage summary, reduced in SQL, equals :func:`usage_summary` of the usage rows
    read whole and stacked in the network's order: the same account numbering and reduced uses per medium, the
    same per-account aggregates (address codes stand for the addresses)."""
    from fraudkit.identification.graph.association import usage_summary
    from fraudkit.pipeline.stages.group import _USAGE_SOURCES, _usage_summary

    tables, _ = micro
    ds = Dataset.from_tables(tables)
    got = _usage_summary(ds)
    rows = pd.concat([ds.to_pandas(n, columns=c)[["account_id", "device_id", "ip", "ts"]]
                      for n, c in _USAGE_SOURCES.items()], ignore_index=True)
    want = usage_summary(rows)
    for res in ("device", "ip"):
        g, w = got.events[res], want.events[res]
        assert g.account_keys.tolist() == list(w.account_keys) and len(w.account) > 100
        order = np.lexsort((g.account, g.seconds, g.entity))
        assert g.account[order].tolist() == w.account.tolist() and g.entity[order].tolist() == w.entity.tolist()
        assert g.seconds[order].tolist() == w.seconds.tolist()
    pd.testing.assert_series_equal(got.first_use.sort_index(), want.first_use.sort_index(), check_names=False)
    key = ["account_id", "hour"]
    pd.testing.assert_frame_equal(got.hours.sort_values(key).reset_index(drop=True),
                                  want.hours.sort_values(key).reset_index(drop=True), check_dtype=False)
    assert (set(map(tuple, got.devices.to_numpy().tolist())) == set(map(tuple, want.devices.to_numpy().tolist())))
    assert len(got.networks) == len(want.networks) > 100
    assert (got.networks.groupby("account_id").size().sort_index().tolist()
            == want.networks.groupby("account_id").size().sort_index().tolist())


def test_dense_blocks_run_while_the_association_networks_leiden_child_solves(micro, monkeypatch):
    """The association network works on a worker thread and gives its turn away while networkit's child solves
    its large components (the edge threshold lowered here); the dense blocks run then, and the association goes
    on only once they are done. The stage's output is the one of the steps run one after the other."""
    from fraudkit.identification.graph import association as association_module
    from fraudkit.identification.graph import leiden
    from fraudkit.pipeline.stages import group

    tables, _ = micro
    monkeypatch.setattr(leiden, "NETWORKIT_EDGES", 20)
    context = lambda: RunContext(seed=0, group={"association": {**group.DEFAULTS["association"],  # noqa: E731
                                                                "max_component_size": 4}})
    events = []
    for module, name in ((leiden.subprocess, "run"), (group, "_dense"), (association_module, "group_features")):
        real = getattr(module, name)

        def recorded(*a, _real=real, _name=name, **k):
            # subprocess.run is the module's: only the Leiden child's call is recorded (not joblib's lscpu, say)
            mine = _name != "run" or leiden.__file__ in map(str, a[0])
            events.extend([f"{_name} starts"] if mine else [])
            out = _real(*a, **k)
            events.extend([f"{_name} ends"] if mine else [])
            return out

        monkeypatch.setattr(module, name, recorded)
    out = run(Dataset.from_tables(tables), context=context())
    # the dense blocks start once the turn is given away for the child, while it solves (whether the worker thread
    # records the child's start before or after the stage's thread takes the turn is the threads' timing)
    assert events.index("_dense starts") < events.index("run ends")
    assert sorted(events[:2]) == ["_dense starts", "run starts"]
    assert events.index("_dense ends") < events.index("group_features starts")

    class InARow:  # every job done before beside returns: the association network, then the dense blocks
        def beside(self, fn, *args):
            return Done(fn(*args))

        def turn(self):
            return contextlib.nullcontext()

    monkeypatch.setattr(group, "Turns", InARow)
    events.clear()
    alone = run(Dataset.from_tables(tables), context=context())
    assert events.index("run ends") < events.index("_dense starts")
    pd.testing.assert_frame_equal(out.scores, alone.scores)
    assert out.notes == alone.notes and list(out.artifacts) == list(alone.artifacts)
    for name in ("association_groups", "dense_blocks", "candidates"):
        pd.testing.assert_frame_equal(out.artifacts[name], alone.artifacts[name])


def test_run_starts_are_the_same_with_single_account_media_split_off():
    """:func:`_run_starts` with ``split`` (a medium one account uses: one run from its earliest second) gives the
    rows of the window over every medium, on uses with ties in time and media of one and of several accounts."""
    import duckdb

    from fraudkit.pipeline.stages.group import _run_starts

    rng = np.random.default_rng(11)
    n = 3000
    ent = rng.integers(0, 400, n)
    acc = np.where(ent < 250, ent * 7 % 97, rng.integers(0, 60, n))  # media 0-249: one account each
    f = pd.DataFrame({"acc": acc, "ent": ent, "sec": rng.integers(0, 50, n)})
    con = duckdb.connect()
    con.register("f", f)
    split = con.execute(_run_starts("SELECT acc, ent, sec FROM f", split=True)).df()
    whole = con.execute(_run_starts("SELECT acc, ent, sec FROM f", split=False)).df()
    key = ["ent", "sec", "acc"]
    split, whole = (x.sort_values(key).reset_index(drop=True) for x in (split, whole))
    pd.testing.assert_frame_equal(split, whole)
    assert 250 <= split["ent"].nunique() and (split["ent"] < 250).sum() == 250  # one start per one-account medium
    assert not split.duplicated(key).any()


def test_device_clusters_run_beside_the_coaction_groups(micro, monkeypatch):
    """Issue 13: the device clusters are found on a worker thread while the co-action groups are mined; the
    stage's scores, notes, artifacts and step timings are those of the steps run one after the other, in their
    order. A failure on either side is the stage's error, the worker stopped first when the stage's side fails."""
    from fraudkit.pipeline.stages import group

    tables, _ = micro
    out = run(Dataset.from_tables(tables), context=RunContext(seed=0))
    started = []
    monkeypatch.setattr(group, "alongside", in_a_row(started))
    alone = run(Dataset.from_tables(tables), context=RunContext(seed=0))
    assert started == ["fraudkit-device-clusters"]
    pd.testing.assert_frame_equal(out.scores, alone.scores)
    assert out.notes == alone.notes and list(out.artifacts) == list(alone.artifacts)
    for name in ("device_clusters", "coaction_groups", "candidates"):
        pd.testing.assert_frame_equal(out.artifacts[name], alone.artifacts[name])
    assert out.artifacts["timings"]["step"].tolist()[:3] == ["load", "device clusters", "co-action groups"]
    monkeypatch.undo()

    def broken(*a, **k):
        raise ValueError("clusters broke")

    monkeypatch.setattr(group, "_device_clusters", broken)
    with pytest.raises(ValueError, match="clusters broke"):
        run(Dataset.from_tables(tables), context=RunContext(seed=0))
    monkeypatch.undo()
    stopped = []
    monkeypatch.setattr(group, "alongside", watched(group.alongside, stopped))
    monkeypatch.setattr(group, "_coaction", lambda *a, **k: (_ for _ in ()).throw(KeyError("coaction broke")))
    with pytest.raises(KeyError, match="coaction broke"):
        run(Dataset.from_tables(tables), context=RunContext(seed=0))
    assert stopped == ["fraudkit-device-clusters"]
