"""Tests of fraudkit.capability.r_ab: the R(A,B) formula, promotion windows, address normalisation, capping."""

import numpy as np
import pandas as pd
import pytest

from fraudkit.capability.r_ab import RabParams, in_promotion, normalize_address, r_ab_edges
from fraudkit.errors import FraudkitError, MissingInputError

pytestmark = pytest.mark.slow(47)  # about 47 s in all here: the file starts early (tests/conftest.py)

T0 = pd.Timestamp("2024-03-01 10:00")


def _orders(rows):
    o = pd.DataFrame(rows, columns=["account_id", "product_id", "minutes", "address", "receiver_phone"])
    o["ts"] = T0 + pd.to_timedelta(o.pop("minutes"), "min")
    return o


def test_formula_by_hand():
    o = _orders([("a", 1, 0, "X路1号", "p1"), ("b", 1, 30, "Y路2号", "p2"), ("a", 2, 0, "X路1号", "p1"),
                 ("c", 2, 10000, "Z路3号", "p3")])
    p = RabParams()
    e = r_ab_edges(o, params=p).set_index(["src", "dst"])
    assert e.index.tolist() == [("a", "b")]
    row = e.loc[("a", "b")]
    w_item = 1 / np.log(3)                         # item 1 has 2 buyers
    w_p = np.exp(-30 * 60 / pd.Timedelta(p.window_normal).total_seconds())
    expect = w_item / np.sqrt(2 * 1) * (1 + p.alpha * w_p) * (1 + p.beta * 0.0)
    assert row["k"] == 1 and row["c_a"] == 2 and row["c_b"] == 1
    assert row["w_purchase"] == pytest.approx(w_p) and row["r_ab"] == pytest.approx(expect)
    assert (e["weight"] == e["r_ab"]).all()


def test_receive_similarity_levels():
    base = [("a", 1, 0), ("b", 1, 5)]
    same_phone = r_ab_edges(_orders([r + ("A路1号", "p") for r in base]))
    assert same_phone["w_receive"].tolist() == [1.0]
    variant = r_ab_edges(_orders([base[0] + ("上海X路1号2栋3单元", "p1"), base[1] + ("上海X路1号2幢3-", "p2")]))
    assert variant["w_receive"].tolist() == [1.0]
    compound = r_ab_edges(_orders([base[0] + ("上海X路1号2栋", "p1"), base[1] + ("上海X路1号9栋", "p2")]))
    assert compound["w_receive"].tolist() == [0.5]
    o = _orders([base[0] + ("A", "p1"), base[1] + ("B", "p2")])
    o["received_at"] = [T0 + pd.Timedelta(days=2), T0 + pd.Timedelta(days=2, hours=1)]
    assert r_ab_edges(o)["w_receive"].tolist() == [0.25]
    assert r_ab_edges(o.drop(columns="received_at"))["w_receive"].tolist() == [0.0]
    assert same_phone["r_ab"].iloc[0] > r_ab_edges(o.drop(columns="received_at"))["r_ab"].iloc[0]


def test_promotion_window_tightens():
    o = _orders([("a", 1, 0, "A", "1"), ("b", 1, 24 * 60, "B", "2")])  # one day apart
    assert len(r_ab_edges(o)) == 1
    promos = pd.DataFrame({"starts_at": [T0 - pd.Timedelta(hours=1)], "ends_at": [T0 + pd.Timedelta(days=2)]})
    assert in_promotion(o, promos).tolist() == [True, True]
    assert r_ab_edges(o, promotions=promos).empty
    with pytest.raises(MissingInputError):
        in_promotion(o, promos.drop(columns="ends_at"))
    with pytest.raises(MissingInputError):
        r_ab_edges(o.drop(columns="product_id"))


def test_hot_item_capped_but_blocked_pairs_found():
    rng = np.random.default_rng(0)
    n = 3000
    crowd = pd.DataFrame({"account_id": np.arange(n), "product_id": "hot",
                          "ts": T0 + pd.to_timedelta(rng.integers(0, 3600, n), "s"),
                          "address": [f"城{i}路{i}号" for i in range(n)], "receiver_phone": np.arange(n).astype(str)})
    # three scalpers hidden in the crowd, hours apart, shipping to one hub
    scal = pd.DataFrame({"account_id": [n, n + 1, n + 2], "product_id": "hot",
                         "ts": T0 + pd.to_timedelta([0, 3, 6], "h"), "address": "仓库路9号", "receiver_phone": "hub"})
    e = r_ab_edges(pd.concat([crowd, scal], ignore_index=True), params=RabParams(k_neighbors=10))
    assert len(e) <= 10 * (n + 3)
    s = e[(e["src"] >= n) & (e["dst"] >= n)]
    assert len(s) == 3 and (s["w_receive"] == 1.0).all()
    assert s["r_ab"].min() > e.loc[(e["src"] < n) & (e["dst"] < n), "r_ab"].max()


def test_normalize_address():
    n = normalize_address(["上海市X路1号三栋2单元301室 (放门口)", "上海市X路1号院3幢2-301", "北京Y路5号"])
    assert n["address"].nunique() == 2 and n["compound"].tolist() == ["上海市X路1号"] * 2 + ["北京Y路5号"]


def test_separates_crowd_scalpers_from_flash_sale():
    from sklearn.metrics import roc_auc_score

    sim = pytest.importorskip("fraudkit.simulation")
    d = sim.generate(sim.load_scenario("micro"), seed=0)
    lab = d["labels"]
    lab = lab[lab["entity_type"] == "account"].drop_duplicates("entity_id").set_index("entity_id")["typology"]
    e = r_ab_edges(d["orders"], d["products"], d["promotions"])
    ts, td = lab.reindex(e["src"]).to_numpy(), lab.reindex(e["dst"]).to_numpy()
    pos = (ts == "crowd_scalper") & (td == "crowd_scalper")
    neg = (ts == "honest_flash_sale") & (td == "honest_flash_sale")
    m = pos | neg
    assert pos.sum() >= 10 and neg.sum() >= 100
    auc_r = roc_auc_score(pos[m], e["r_ab"][m])
    auc_k = roc_auc_score(pos[m], e["k"][m])
    assert auc_r > 0.75 and auc_r > auc_k + 0.1


def test_consolidation_flags_forwarding_not_flash_sale_or_station():
    """Scalpers ordering over a day but received together at one hub are flagged; a flash-sale crowd
    (same minute, own homes) and a busy parcel station (random receipt hours) are not."""
    from fraudkit.capability.r_ab import consolidation_scores

    rng = np.random.default_rng(0)
    t0 = pd.Timestamp("2024-06-18 20:00")
    rows = []
    for i in range(12):  # crowd scalpers: orders spread over a day, one pickup run of 3 hours
        rows.append((f"s{i}", 7, t0 + pd.Timedelta(minutes=int(rng.integers(0, 1440))), "X路1号菜鸟驿站",
                     t0 + pd.Timedelta(days=3, minutes=int(rng.integers(0, 180)))))
    for i in range(150):  # flash-sale crowd: same item, same minutes, own homes
        ts = t0 + pd.Timedelta(seconds=int(rng.exponential(90)))
        rows.append((f"f{i}", 8, ts, f"Y路{i}号", ts + pd.Timedelta(hours=float(rng.lognormal(np.log(60), 0.45)))))
    for i in range(300):  # a busy station: many neighbours, popular item, usual delivery delays
        ts = t0 + pd.Timedelta(minutes=int(rng.integers(0, 14 * 1440)))
        rows.append((f"n{i}", 9, ts, "Z路5号菜鸟驿站", ts + pd.Timedelta(hours=float(rng.lognormal(np.log(60), 0.45)))))
    o = pd.DataFrame(rows, columns=["account_id", "product_id", "ts", "address", "received_at"])
    s = consolidation_scores(o).set_index("account_id")
    flagged = s["score"] >= 0.5
    assert flagged[[f"s{i}" for i in range(12)]].mean() >= 0.9
    assert not flagged.drop([f"s{i}" for i in range(12)]).any()
    assert s.attrs["n_tests"] > 0


def test_consolidation_handles_no_receipts():
    from fraudkit.capability.r_ab import consolidation_scores

    o = pd.DataFrame({"account_id": ["a"], "product_id": [1], "ts": pd.to_datetime(["2024-01-01"]),
                      "address": ["x"], "received_at": pd.to_datetime([None])})
    assert consolidation_scores(o).empty


# --- the sort-based aggregation equals the pandas groupby / merge it replaced ------------------------------


def _reference_receive_similarity(o, acc, item, a, b, pi, params, n_acc):
    """W_receive through pandas merges (the pre-0.x implementation), as an independent reference."""
    w = np.zeros(len(a))
    pair = pd.DataFrame({"a": a, "b": b, "row": np.arange(len(a))})

    def shared(values, score):
        codes, _ = pd.factorize(pd.Series(values), sort=False)
        av = pd.DataFrame({"acc": acc, "v": codes})
        av = av[av["v"] >= 0].drop_duplicates()
        m = pair.merge(av.rename(columns={"acc": "a"}), on="a").merge(av.rename(columns={"acc": "b"}), on=["b", "v"])
        hit = m["row"].unique()
        w[hit] = np.maximum(w[hit], score)

    rt = pd.to_datetime(o["received_at"])
    ok = rt.notna().to_numpy()
    rw = int(pd.Timedelta(params.receive_window).total_seconds())
    r = pd.DataFrame({"acc": acc[ok], "item": item[ok], "rt": rt[ok].to_numpy("datetime64[s]").astype(np.int64)})
    r = r.groupby(["acc", "item"])["rt"].min().reset_index()
    co = pi[["p", "item"]].assign(a=lambda f: f["p"] // n_acc, b=lambda f: f["p"] % n_acc).merge(pair, on=["a", "b"])
    m = co.merge(r.rename(columns={"acc": "a", "rt": "ra"}), on=["a", "item"]).merge(
        r.rename(columns={"acc": "b", "rt": "rb"}), on=["b", "item"])
    hit = m.loc[(m["ra"] - m["rb"]).abs() <= rw, "row"].unique()
    w[hit] = np.maximum(w[hit], params.receive_time)
    na = normalize_address(o["address"])
    shared(na["compound"].where(o["address"].notna().to_numpy()).to_numpy(), params.receive_compound)
    shared(na["address"].where(o["address"].notna().to_numpy()).to_numpy(), 1.0)
    shared(o["receiver_phone"].to_numpy(), 1.0)
    return w


def test_aggregation_and_receive_similarity_equal_the_pandas_reference():
    """On simulated orders: k, sums, means (bit for bit) and W_receive equal pandas groupby / merges."""
    import fraudkit.capability.r_ab as R
    from fraudkit.simulation import generate, load_scenario

    o = generate(load_scenario("demo-small"), seed=0)["orders"]
    p = RabParams()
    seen = {}
    real_best, real_recv = R._best_per_pair_item, R._receive_similarity

    def spy_best(pc, item, s, n_item, rcv=None):
        seen["in"] = (pc.copy(), item.copy(), s.copy())
        return real_best(pc, item, s, n_item, rcv)

    def spy_recv(ends, acc, a, b, rcv, **kw):
        seen["recv"] = (acc, a, b)
        return real_recv(ends, acc, a, b, rcv, **kw)

    R._best_per_pair_item, R._receive_similarity = spy_best, spy_recv
    try:
        e = r_ab_edges(o, params=p)
    finally:
        R._best_per_pair_item, R._receive_similarity = real_best, real_recv
    pc, item, s = seen["in"]
    pi = pd.DataFrame({"p": pc, "item": item, "s": s}).groupby(["p", "item"], sort=False)["s"].max().reset_index()
    acc, a, b = seen["recv"]
    o_ = o[o["account_id"].notna() & o["product_id"].notna()]  # the rows r_ab_edges reads
    it = pd.factorize(o_["product_id"], sort=False)[0].astype(np.int64)
    n_acc = int(acc.max()) + 1
    d_item = np.bincount(np.unique(acc * (int(it.max()) + 1) + it) % (int(it.max()) + 1))
    pi["w"] = 1.0 / np.log1p(d_item[pi["item"].to_numpy()])
    agg = pi.groupby("p", sort=True).agg(k=("s", "size"), sum_w=("w", "sum"), w_purchase=("s", "mean"))
    assert len(e) == len(agg) > 100
    assert np.array_equal(e["k"].to_numpy(), agg["k"].to_numpy())
    assert np.array_equal(e["w_purchase"].to_numpy(), agg["w_purchase"].to_numpy())
    assert np.array_equal(a * n_acc + b, agg.index.to_numpy())
    want = _reference_receive_similarity(o_, acc, it, a, b, pi, p, n_acc)
    assert np.array_equal(e["w_receive"].to_numpy(), want)
    assert set(np.unique(want)) >= {0.0, 1.0}
    r = (agg["sum_w"].to_numpy() / np.sqrt(e["c_a"].to_numpy() * e["c_b"].to_numpy())
         * (1 + p.alpha * agg["w_purchase"].to_numpy()) * (1 + p.beta * want))
    assert np.array_equal(e["r_ab"].to_numpy(), r)


def _stage_ordered(o):
    """Orders as the graph stage holds them (its columns, canonical order): what r_ab_edges_sql reads."""
    from fraudkit.data.dataset import sort_canonical

    return sort_canonical(o[[c for c in ("account_id", "device_id", "product_id", "address", "receiver_phone",
                                         "received_at", "promotion_id", "ts") if c in o.columns]], "orders")


def _assert_same_edges(a, b):
    assert list(a.columns) == list(b.columns)
    for c in a.columns:  # every bit: communities downstream follow the last bit of a weight
        assert np.array_equal(a[c].to_numpy(), b[c].to_numpy()), c


@pytest.fixture(scope="module")
def small_world():
    from fraudkit.simulation import generate, load_scenario

    w = generate(load_scenario("demo-small"), seed=0)
    return w["orders"], w["promotions"], w


@pytest.mark.parametrize("params", [RabParams(), RabParams(max_degree=5, k_neighbors=3, min_k=2)],
                         ids=["default", "capped"])
def test_sql_edges_equal_the_numpy_edges_on_a_small_world(small_world, params):
    from fraudkit.capability.r_ab import r_ab_edges_sql

    orders, promotions, _ = small_world
    want = r_ab_edges(_stage_ordered(orders), promotions=promotions, params=params)
    # rows in another order give the same edges: the SQL reads them in the canonical order
    shuffled = orders.sample(frac=1.0, random_state=7)
    got = r_ab_edges_sql({"orders": shuffled, "promotions": promotions}, params=params)
    _assert_same_edges(want, got)
    assert got.attrs["params"] == want.attrs["params"]
    # the world exercises every branch: promotions, hot blocks, all receipt levels, pairs of 1, 2 and 3+ items
    assert len(got) > 10_000 if params.min_k == 1 else len(got) > 100
    assert {1, 2} <= set(got["k"]) or params.min_k == 2
    assert (got["k"] >= 3).any()
    assert set(np.unique(got["w_receive"])) >= {0.0, 0.25, 1.0}


def test_sql_edges_without_optional_columns_or_promotions(small_world):
    from fraudkit.capability.r_ab import r_ab_edges_sql

    orders = small_world[0]
    for drop in (["address"], ["receiver_phone", "received_at", "promotion_id"], ["address", "receiver_phone"]):
        o = orders.drop(columns=drop)
        p = RabParams(max_degree=8, k_neighbors=4)
        _assert_same_edges(r_ab_edges(_stage_ordered(o), params=p), r_ab_edges_sql({"orders": o}, params=p))
    empty = r_ab_edges_sql({"orders": orders.iloc[:1]})
    assert empty.empty and list(empty.columns) == list(r_ab_edges(orders.iloc[:1]).columns)
    with pytest.raises(MissingInputError):
        r_ab_edges_sql({"promotions": small_world[1]})


@pytest.mark.spark
def test_sql_edges_on_spark_equal_duckdb(spark, small_world, tmp_path):
    from fraudkit.capability.r_ab import r_ab_edges_sql
    from fraudkit.data.dataset import load_dataset

    orders, promotions, world = small_world
    for name in ("accounts", "orders", "promotions", "interactions"):  # the tables a dataset folder needs
        world[name].to_parquet(tmp_path / f"{name}.parquet")
    p = RabParams(max_degree=5, k_neighbors=3)
    duck = r_ab_edges_sql(load_dataset(tmp_path, validate=False), params=p)
    sp = r_ab_edges_sql(load_dataset(tmp_path, validate=False, engine="spark", spark=spark), params=p)
    _assert_same_edges(duck, sp)
    _assert_same_edges(r_ab_edges(_stage_ordered(orders), promotions=promotions, params=p), duck)


def test_pairs_share_is_the_set_intersection():
    """Buyers with one, two and many values (the direct comparison and the expanded lookup), in small chunks."""
    from fraudkit.capability.r_ab import _pairs_share

    rng = np.random.default_rng(5)
    n_acc, n_v = 60, 25
    held = {acc: set(rng.choice(n_v, int(rng.choice([0, 1, 2, 3, 7])), replace=False).tolist())
            for acc in range(n_acc)}
    av = np.array(sorted(acc * n_v + v for acc, vs in held.items() for v in vs), dtype=np.int64)
    a, b = rng.integers(0, n_acc, 500), rng.integers(0, n_acc, 500)
    want = np.array([bool(held[x] & held[y]) for x, y in zip(a.tolist(), b.tolist())])
    assert want.sum() > 50 and (~want).sum() > 50
    # in one part, and cut in parts on threads
    for min_parts in (10**9, 1):
        got = _pairs_share(a, b, av // n_v, av % n_v, n_acc, n_v, chunk=17, min_parts=min_parts)
        assert got.tolist() == want.tolist()


def test_endpoints_given_equal_endpoints_computed():
    """R(A,B) and the consolidation test read the same codes from a caller's order_endpoints as they compute,
    on orders with missing accounts, addresses and phones; endpoints of another frame are refused."""
    from fraudkit.capability.r_ab import consolidation_scores, order_endpoints
    from fraudkit.simulation import generate, load_scenario

    o = generate(load_scenario("demo-small"), seed=0)["orders"].reset_index(drop=True)
    o.loc[::37, "account_id"] = None
    o.loc[::11, "address"] = None
    o.loc[::13, "receiver_phone"] = None
    ends = order_endpoints(o)
    assert (ends.address == -1).sum() == o["address"].isna().sum()
    mine = r_ab_edges(o, endpoints=ends)
    assert len(mine) > 100 and set(mine["w_receive"]) >= {0.0, 0.5, 1.0}
    pd.testing.assert_frame_equal(mine, r_ab_edges(o))
    pd.testing.assert_frame_equal(consolidation_scores(o, endpoints=ends), consolidation_scores(o))
    with pytest.raises(FraudkitError, match="endpoints describe"):
        r_ab_edges(o.iloc[1:], endpoints=ends)
