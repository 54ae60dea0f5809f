import numpy as np
import pandas as pd
import pytest

from fraudkit.capability.graphs import shared_entity_projection
from fraudkit.errors import MissingInputError
from fraudkit.identification.graph.association import (
    FEATURES,
    AssociationNetwork,
    build_association_groups,
    usage_summary,
)

T0 = pd.Timestamp("2024-03-01")


def _tables(seed=0, ring_size=12):
    """A coupon ring (new accounts, 3 emulators, one /24, coupon orders) among honest families."""
    rng = np.random.default_rng(seed)
    acc, logins, orders, devices = [], [], [], []
    for i in range(ring_size):
        a = f"r{i}"
        acc.append((a, T0 - pd.Timedelta(hours=int(rng.integers(1, 48)))))
        d = f"rd{i % 3}"
        logins.append((a, d, f"10.0.0.{i % 4}", T0 + pd.Timedelta(minutes=int(rng.integers(30)))))
        orders.append((f"o{a}", a, d, "p1", "C1", "PR1", "addr-ring", T0 + pd.Timedelta(minutes=int(rng.integers(30)))))
    for k in range(3):
        devices.append((f"rd{k}", True))
    for f in range(15):
        for m in range(3):
            a = f"f{f}_{m}"
            acc.append((a, T0 - pd.Timedelta(days=int(rng.integers(200, 2000)))))
            logins.append((a, f"fd{f}", f"100.{f}.{m}.1", T0 + pd.Timedelta(hours=int(rng.integers(0, 200)))))
            orders.append((f"o{a}", a, f"fd{f}", f"p{rng.integers(2, 50)}", None, None, f"home{f}",
                           T0 + pd.Timedelta(hours=int(rng.integers(0, 200)))))
        devices.append((f"fd{f}", False))
    t = {"accounts": pd.DataFrame(acc, columns=["account_id", "registered_at"]).assign(phone=None),
         "logins": pd.DataFrame(logins, columns=["account_id", "device_id", "ip", "ts"]),
         "orders": pd.DataFrame(orders, columns=["order_id", "account_id", "device_id", "product_id", "coupon_id",
                                                "promotion_id", "address", "ts"]).assign(ip=None, receiver_phone=None),
         "devices": pd.DataFrame(devices, columns=["device_id", "is_emulator"]).assign(is_rooted=False)}
    return t


def test_groups_are_the_ring_and_families():
    t = _tables()
    m, e = build_association_groups(t, seed=0)
    sizes = m.groupby("group_id").size()
    assert sizes.iloc[0] == 12 and set(m.loc[m.group_id == 0, "account_id"]) == {f"r{i}" for i in range(12)}
    assert (sizes.iloc[1:] == 3).all() and len(sizes) == 16
    assert set(e["resource"]) <= {"device", "ip", "phone", "address"}


def test_features_and_unsupervised_ranking():
    t = _tables()
    net = AssociationNetwork(seed=0).fit(t)
    f = net.features_
    assert list(f.columns[1:len(FEATURES) + 1]) == list(FEATURES)
    ring = f.iloc[0]
    assert ring["new_account_share"] == 1.0 and ring["emulator_share"] == 1.0 and ring["coupon_order_share"] == 1.0
    assert ring["score"] == f["score"].max() and f["score"].between(0, 1).all()
    acc = net.account_scores()
    assert set(acc.loc[acc.score > net.threshold_, "account_id"]) == {f"r{i}" for i in range(12)}
    assert net.score_frame()["entity_type"].iloc[0] == "group"
    again = AssociationNetwork(seed=0).fit(t)
    np.testing.assert_array_equal(net.decision_scores_, again.decision_scores_)


def test_classifier_trains_on_other_dataset_only():
    train = _tables(seed=1, ring_size=9)
    labels = pd.DataFrame({"entity_type": "account", "entity_id": [f"r{i}" for i in range(9)],
                           "typology": "coupon_abuser"})
    net = AssociationNetwork(seed=0).fit(_tables(seed=2), train_tables=train, train_labels=labels)
    assert net.classifier_ is not None
    f = net.features_
    assert f["classifier"].iloc[0] > 0.5 and (f["classifier"].iloc[1:] < 0.5).all()
    with pytest.raises(ValueError):
        AssociationNetwork().fit(_tables(), train_tables=train)
    with pytest.raises(MissingInputError):
        AssociationNetwork().fit(_tables(), train_tables=train, train_labels=labels.iloc[:0])
    # the training groups built once (a pipeline keeps them for every dataset it scores) train the same forest
    groups = AssociationNetwork(seed=0).training_groups(train, labels)
    assert groups.columns.tolist() == ["group_id", *FEATURES, "label"] and groups["label"].sum() == 1
    again = AssociationNetwork(seed=0).fit(_tables(seed=2), train_groups=groups)
    pd.testing.assert_frame_equal(again.features_, f)
    with pytest.raises(ValueError, match="pass one of"):
        AssociationNetwork().fit(_tables(), train_groups=groups, train_tables=train, train_labels=labels)


def test_bad_resources_and_empty():
    with pytest.raises(ValueError):
        build_association_groups(_tables(), resources=("email",))
    m, e = build_association_groups({"accounts": _tables()["accounts"]})
    assert len(m) == 0 and len(e) == 0
    net = AssociationNetwork().fit({"accounts": _tables()["accounts"]})
    assert len(net.decision_scores_) == 0


def _rings_and_families(seed):
    """Four coupon rings and their honest families in one dataset (ids prefixed per copy)."""
    parts = []
    for i in range(4):
        t = _tables(seed=seed + i, ring_size=8 + i)
        parts.append({name: df.assign(**{c: (f"c{i}_" + df[c].astype(str)).where(df[c].notna(), None)
                                          for c in ("account_id", "device_id", "ip", "address") if c in df.columns})
                      for name, df in t.items()})
    return {name: pd.concat([p[name] for p in parts], ignore_index=True) for name in parts[0]}


def test_training_dataset_scores_itself_out_of_fold():
    """labels= trains on the scored dataset's own groups but scores each group with a forest that never saw it,
    so thresholds set on a training world transfer to a world the classifier never saw."""
    t = _rings_and_families(seed=10)
    ring = t["accounts"]["account_id"][t["accounts"]["account_id"].str.contains("_r")]
    labels = pd.DataFrame({"entity_type": "account", "entity_id": ring.to_numpy(), "typology": "coupon_abuser"})
    net = AssociationNetwork(seed=0).fit(t, labels=labels)
    f = net.features_
    assert len(f) == 4 + 4 * 15 and net.classifier_ is not None
    in_sample = net.classifier_.predict_proba(f[list(FEATURES)].to_numpy(float))[:, 1]
    assert not np.allclose(f["classifier"], in_sample)  # out-of-fold, not the refitted forest's own view
    ring_groups = f["new_account_share"] == 1.0
    assert ring_groups.sum() == 4 and (f.loc[ring_groups, "classifier"] > 0.5).all()
    assert (f.loc[~ring_groups, "classifier"] < 0.5).all()
    again = AssociationNetwork(seed=0).fit(t, labels=labels)
    np.testing.assert_array_equal(f["classifier"], again.features_["classifier"])
    with pytest.raises(ValueError):
        AssociationNetwork().fit(t, labels=labels, train_tables=t, train_labels=labels)
    with pytest.raises(MissingInputError):  # one positive group cannot be split into folds
        AssociationNetwork().fit(_tables(), labels=labels.assign(entity_id=[f"r{i}" for i in range(len(labels))]))


def test_usage_rows_with_address_codes_give_the_same_groups_and_features():
    """``fit(usage=)``: the stacked usage rows built by the caller, the addresses as integer codes and their /24
    networks as an ``ip24`` code column, give exactly the groups and features the addresses give."""
    t = _tables()
    plain = AssociationNetwork(seed=0).fit(t)
    u = t["logins"][["account_id", "device_id", "ip", "ts"]]
    u = pd.concat([u, t["orders"][["account_id", "device_id", "ip", "ts"]]], ignore_index=True)
    code, uniq = pd.factorize(u["ip"])
    net, _ = pd.factorize(pd.Series(uniq).str.rsplit(".", n=1).str[0])
    usage = u.assign(ip=np.where(code >= 0, code, np.nan),
                     ip24=np.where(code >= 0, net[np.maximum(code, 0)], np.nan).astype(float))
    slim = {k: v for k, v in t.items() if k != "logins"}  # the usage rows replace the tables' device and ip columns
    coded = AssociationNetwork(seed=0).fit(slim, usage=usage)
    pd.testing.assert_frame_equal(coded.membership_, plain.membership_, check_exact=True)
    pd.testing.assert_frame_equal(coded.features_, plain.features_, check_exact=True)
    assert plain.features_["accounts_per_ip24"].gt(0).any()


def test_usage_summary_gives_the_groups_and_features_of_the_rows():
    """``fit(usage=)`` with the :class:`UsageSummary` of the usage rows (uses reduced per medium, per-account
    aggregates) gives exactly the groups, edges and features of the rows themselves."""
    t = _rings_and_families(seed=3)
    u = pd.concat([t["logins"][["account_id", "device_id", "ip", "ts"]],
                   t["orders"][["account_id", "device_id", "ip", "ts"]]], ignore_index=True)
    u = pd.concat([u, u.iloc[::3]], ignore_index=True)  # repeated uses
    rows = AssociationNetwork(seed=0).fit(t, usage=u)
    summary = usage_summary(u)
    assert len(summary.events["device"].account) < u["device_id"].notna().sum()
    assert summary.hours["n"].sum() == len(u) and summary.first_use.index.is_unique
    reduced = AssociationNetwork(seed=0).fit(t, usage=summary)
    pd.testing.assert_frame_equal(reduced.membership_, rows.membership_, check_exact=True)
    pd.testing.assert_frame_equal(reduced.edges_, rows.edges_, check_exact=True)
    pd.testing.assert_frame_equal(reduced.features_, rows.features_, check_exact=True)
    assert rows.features_["accounts_per_device"].gt(1).any() and len(rows.features_) > 4


@pytest.mark.parametrize("min_edge_weight", [0.0, 1.0])
def test_pair_weights_are_those_of_the_concatenated_edges_grouped(min_edge_weight):
    """The projections' edges are oriented and summed per pair on integer codes: the same edges, pairs and groups,
    bit for bit, as concatenating them, orienting each pair by first appearance and grouping with pandas."""
    t = _rings_and_families(seed=20)
    m, e = build_association_groups(t, seed=0, min_edge_weight=min_edge_weight)
    parts = []
    usage = pd.concat([t[n][["account_id", "device_id", "ip", "ts"]] for n in ("logins", "orders")], ignore_index=True)
    for res, col, frame in (("device", "device_id", usage), ("ip", "ip", usage), ("address", "address", t["orders"])):
        p = shared_entity_projection(frame, key="account_id", entity=col, time="ts" if res != "address" else None,
                                     window="1D" if res != "address" else None, max_degree=200)
        parts.append(p[["src", "dst", "weight"]].assign(resource=res))
    want = pd.concat(parts, ignore_index=True)
    keys, uniq = pd.factorize(pd.concat([want["src"], want["dst"]], ignore_index=True))
    s, d = keys[: len(want)], keys[len(want):]
    want = want.assign(src=np.asarray(uniq)[np.minimum(s, d)], dst=np.asarray(uniq)[np.maximum(s, d)])
    if min_edge_weight:
        want = want[want.groupby(["src", "dst"], sort=False)["weight"].transform("sum") >= min_edge_weight]
        want = want.reset_index(drop=True)
    assert 0 < len(want) < len(pd.concat(parts)) if min_edge_weight else len(want) > 100
    pd.testing.assert_frame_equal(e, want, check_exact=True)
    total = want.groupby(["src", "dst"], sort=False, as_index=False)["weight"].sum()
    assert set(m["account_id"]) <= set(total["src"]) | set(total["dst"])
