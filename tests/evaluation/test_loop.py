"""Tests for fraudkit.evaluation.loop: the steps on hand-made frames, then the whole loop on the micro scenario."""

from __future__ import annotations

import pandas as pd
import pytest

from fraudkit.capability.lists import ListStore
from fraudkit.data.slicing import slice_tables
from fraudkit.errors import FraudkitError
from fraudkit.evaluation.loop import (
    ClosedLoop,
    LoopResult,
    finished_loop,
    identify_products,
    loop_windows,
    run_closed_loop,
    sink_data,
    start_closed_loop,
)

T = pd.Timestamp


def test_slice_tables_is_point_in_time(tiny_tables):
    tables = {**tiny_tables, "labels": pd.DataFrame({"entity_type": ["account"], "entity_id": [4],
                                                     "typology": ["device_farm"]})}
    end = T("2024-03-01 09:00")
    store = ListStore()
    store.add("blacklist", "scalper_addresses", "address", ["x"], reason="r", actor="t", at="2024-02-01")
    store.add("blacklist", "scalper_addresses", "address", ["y"], reason="r", actor="t", at="2024-03-05")
    s = slice_tables(tables, end, list_store=store)
    assert "labels" not in s
    for name, df in s.items():
        from fraudkit.data.contract import TABLES

        col = TABLES[name].time_column
        if col and name not in ("devices", "accounts"):
            assert (pd.to_datetime(df[col]) < end).all(), name
    assert len(s["logins"]) == (pd.to_datetime(tiny_tables["logins"]["ts"]) < end).sum()
    if "orders" in s and len(s["orders"]):
        assert (pd.to_datetime(s["orders"]["received_at"]).dropna() < end).all()
    le = s["list_entries"]
    assert "x" in set(le["entity_id"]) and "y" not in set(le["entity_id"])  # only entries added before end
    assert tiny_tables["logins"].equals(tables["logins"])  # inputs untouched


def test_slice_keeps_referenced_rows():
    tables = {
        "accounts": pd.DataFrame({"account_id": [1], "registered_at": [T("2024-06-01")]}),
        "devices": pd.DataFrame({"device_id": ["d1", "d2"], "first_seen": [T("2024-06-02 12:00"), T("2024-06-05")]}),
        "logins": pd.DataFrame({"login_id": [1], "account_id": [1], "device_id": ["d1"], "ts": [T("2024-06-02 10:00")]}),
    }
    s = slice_tables(tables, T("2024-06-02 11:00"))
    assert s["devices"]["device_id"].tolist() == ["d1"]  # used before its first_seen: kept, not dangling


def test_loop_windows():
    t = {"orders": pd.DataFrame({"ts": pd.to_datetime(["2024-06-01 06:00", "2024-06-04 18:00"])})}
    w = loop_windows(t, n_windows=3)
    assert len(w) == 3 and w[0][0] == T("2024-06-01 06:00") and w[-1][1] > T("2024-06-04 18:00")
    assert all(a[1] == b[0] for a, b in zip(w, w[1:]))
    d = loop_windows(t, window="2D")
    assert [e for _, e in d] == [T("2024-06-03"), T("2024-06-05")]
    with pytest.raises(FraudkitError, match="shorter window"):
        loop_windows(t, window="10D")
    with pytest.raises(FraudkitError, match="no interactions"):
        loop_windows({"accounts": pd.DataFrame({"account_id": [1]})}, n_windows=2)
    with pytest.raises(FraudkitError, match="n_windows must be an int >= 2"):
        ClosedLoop(n_windows=1).run({"accounts": pd.DataFrame({"account_id": [1]})}, "/nonexistent/never")


ORDERS = pd.DataFrame({
    "order_id": range(8),
    "ts": pd.date_range("2024-06-01", periods=8, freq="h"),
    "product_id": [1, 1, 1, 1, 2, 2, 3, 3],
    "account_id": ["s1", "s2", "s3", "h1", "h2", "h3", "h4", "h4"],
    "address": ["den", "den", "den", "home1", "home2", "home3", "home4", "home4"],
    "device_id": ["d1", "d1", "d2", "d3", "d4", "d5", "d6", "d6"],
    "receiver_phone": ["r1", "r1", "r1", "r2", "r3", "r4", "r5", "r5"],
    "quantity": [2, 2, 2, 1, 1, 1, 3, 4],
})


def test_identify_products():
    t = identify_products(ORDERS, {"s1", "s2", "s3"}, min_flagged=2, flag_share=0.3, units_per_address=6)
    t = t.set_index("product_id")
    assert t.loc[1, ["n_buyers", "n_flagged_buyers", "max_units_per_address"]].tolist() == [4, 3, 6]
    assert t.loc[1, "reason"] == "flagged buyers+units per address"
    assert t.loc[3, "watched"] and t.loc[3, "reason"] == "units per address"  # 7 units to one honest-looking home
    assert not t.loc[2, "watched"]
    assert identify_products(None, set()).empty


def test_sink_data_protects_shared_keys():
    s = sink_data(ORDERS, {"s1", "s2", "s3", "h2"}, min_accounts=2, min_share=0.5)
    assert s["addresses"][["value", "n_accounts", "n_flagged", "units"]].values.tolist() == [["den", 3, 3, 6]]
    assert s["devices"]["value"].tolist() == ["d1"]  # d2 has only one flagged account
    assert s["phones"]["value"].tolist() == ["r1"]
    many = pd.concat([ORDERS, ORDERS.assign(order_id=ORDERS["order_id"] + 100,
                                            account_id=["x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8"])])
    # the same den now shared with three unflagged accounts: 3 of 6 flagged is still >= 0.5, 3 of 7 is not
    many.loc[many["account_id"] == "x4", "address"] = "den"
    assert sink_data(many, {"s1", "s2", "s3"}, min_share=0.5)["addresses"].empty


# --- the whole loop on micro ------------------------------------------------------------------


@pytest.fixture(scope="module")
def micro():
    from fraudkit.simulation import generate, load_scenario

    return generate(load_scenario("micro"), seed=0)


@pytest.fixture(scope="module")
def loop_run(micro, tmp_path_factory):
    out = tmp_path_factory.mktemp("loop") / "out"
    return run_closed_loop(micro, out, n_windows=2, stages=("graph",), seed=0)


def test_loop_runs_iterations_and_writes_artifacts(loop_run):
    r = loop_run
    s = r.summary
    assert s["iteration"].tolist() == [0, 1]
    out = r.out_dir
    for p in ("loop/summary.parquet", "loop/evaluation.parquet", "loop/early_warning.parquet", "seed_pool.parquet",
              "watched_products.parquet", "sunk/addresses.parquet", "sunk/devices.parquet", "loop_labels.parquet",
              "lists/entries.parquet", "lists/audit.parquet", "loop/iteration_0/run/accounts.parquet",
              "loop/iteration_1/decisions_window.parquet", "loop/iteration_1/rescan_scores.parquet"):
        assert (out / p).is_file(), p
    assert not list(out.parent.glob(".out.*"))  # the atomic temporary folder is gone
    pd.testing.assert_frame_equal(pd.read_parquet(out / "loop" / "summary.parquet"), s)


def test_loop_seed_pool_grows_and_labels_persist(loop_run):
    """The seed pool only ever adds (SeedPool.update merges), and on this seeded run it grows strictly;
    the loop's labels persist, so every account labelled at iteration 0 is still labelled at 1."""
    s = loop_run.summary
    assert s["n_seeds"].iloc[0] > 0
    assert s["n_seeds"].iloc[1] > s["n_seeds"].iloc[0]
    assert len(loop_run.seed_pool) == s["n_seed_entities"].iloc[-1]
    lab = loop_run.loop_labels
    first = set(pd.read_parquet(loop_run.out_dir / "loop" / "iteration_0" / "flagged_loop.parquet")["account_id"])
    last = set(pd.read_parquet(loop_run.out_dir / "loop" / "iteration_1" / "flagged_loop.parquet")["account_id"])
    assert first <= last and set(lab["account_id"]) == last
    assert set(lab.loc[lab["first_iteration"] == 0, "account_id"]) == first


def test_loop_recall_figure_matches_labels(loop_run, micro):
    """recall_loop is recomputed here from the written flags and the labels. It is not asserted to rise:
    labels persist (the numerator never falls) but new attackers enter the denominator each window.
    What holds by design is recall_loop >= recall_pipeline (the loop's labels contain the run's flags)."""
    s = loop_run.summary
    labels = micro["labels"]
    fraud_ids = set(labels.loc[(labels["entity_type"] == "account")
                               & labels["typology"].isin(["offline_script", "device_farm", "nurtured_account",
                                                          "crowd_engagement", "engagement_buyer", "group_scalper",
                                                          "crowd_scalper", "coupon_abuser"]), "entity_id"].astype(str))
    for k in (0, 1):
        it = loop_run.out_dir / "loop" / f"iteration_{k}"
        seen = set(pd.read_parquet(it / "run" / "accounts.parquet")["account_id"].astype(str))
        flagged = set(pd.read_parquet(it / "flagged_loop.parquet")["account_id"])
        fraud = fraud_ids & seen
        assert s.loc[k, "n_fraud_seen"] == len(fraud)
        assert s.loc[k, "recall_loop"] == pytest.approx(len(fraud & flagged) / len(fraud))
        assert s.loc[k, "recall_loop"] >= s.loc[k, "recall_pipeline"]
    assert s["recall_loop"].iloc[1] > 0
    # prospective interception needs earlier knowledge: nothing at the first window
    assert s.loc[0, "fraud_intercepted_prospective"] == 0


def test_loop_lists_are_scoped_and_audited(loop_run):
    e = loop_run.store.entries
    assert len(e) and set(e["list_type"]) <= {"blacklist", "graylist"}
    assert e.loc[e["list_type"] == "blacklist", "scope"].str.startswith("promotion:").all()
    assert set(loop_run.store.audit["actor"]) == {"loop"}
    assert e["expires_at"].notna().all()


def test_loop_is_deterministic(loop_run, micro, tmp_path):
    again = run_closed_loop(micro, tmp_path / "again", n_windows=2, stages=("graph",), seed=0)
    pd.testing.assert_frame_equal(again.summary, loop_run.summary)
    pd.testing.assert_frame_equal(again.seed_pool.table, loop_run.seed_pool.table)
    pd.testing.assert_frame_equal(again.loop_labels, loop_run.loop_labels)
    pd.testing.assert_frame_equal(again.watched_products, loop_run.watched_products)


def test_loop_seeds_the_run_instead_of_running_the_graph_stage_twice(loop_run):
    """Iteration k's run gets the pool of iterations < k through score_dataset(seed_pool=): its manifest records
    them, and the re-scan scores are the run's own graph scores (no second graph-stage run)."""
    import json

    out = loop_run.out_dir / "loop"
    m0 = json.loads((out / "iteration_0" / "run" / "manifest.json").read_text())
    m1 = json.loads((out / "iteration_1" / "run" / "manifest.json").read_text())
    assert m0["seed_pool"]["count"] == 0
    assert m1["seed_pool"]["source"] == "SeedPool" and m1["seed_pool"]["count"] == loop_run.summary["n_seeds"].iloc[0]
    assert m1["parameters"]["context"]["run_id"] == "iteration_1"
    run_graph = pd.read_parquet(out / "iteration_1" / "run" / "scores.parquet").query("stage == 'graph'")
    rescan = pd.read_parquet(out / "iteration_1" / "rescan_scores.parquet")
    assert len(rescan) == len(run_graph) and set(rescan["method"]) == set(run_graph["method"])


def test_loop_tables_hold_no_wall_clock_and_its_manifest_the_seconds(loop_run):
    import json

    assert "seconds" not in loop_run.summary.columns
    man = json.loads((loop_run.out_dir / "loop" / "manifest.json").read_text())
    assert set(man["timings"]) == {f"iteration_{k}" for k in loop_run.summary["iteration"]}
    assert man["params"]["n_windows"] == 2


def test_each_iteration_run_decides_only_its_window(loop_run):
    for row in loop_run.summary.itertuples():
        dec = pd.read_parquet(loop_run.out_dir / "loop" / f"iteration_{row.iteration}" / "run" / "decisions.parquet")
        assert (dec["ts"] >= row.window_start).all() and (dec["ts"] < row.window_end).all()
        window = pd.read_parquet(loop_run.out_dir / "loop" / f"iteration_{row.iteration}" / "decisions_window.parquet")
        assert len(window) == len(dec)


def test_each_window_run_equals_a_validated_run_of_its_slice_from_scratch(loop_run, micro, tmp_path):
    """The loop validates the data once and scores each window's slice without validating it again, names it
    by fingerprint instead of hashing its rows, parses its rule set once and skips the feature tables and the
    events' rule rows of the score table: the run
    of iteration 1 equals a run from scratch on the validated slice (the loop's lists as of the window's end,
    its seed pool as of the window's start)."""
    import json

    from fraudkit.data.dataset import Dataset
    from fraudkit.identification.graph.propagation import SeedPool
    from fraudkit.pipeline.score import score_dataset

    row = loop_run.summary.iloc[1]
    it = loop_run.out_dir / "loop" / "iteration_1" / "run"
    # the final store holds the entries added at each window's end; the slice keeps those added before its end
    sl = slice_tables(micro, row.window_end, list_store=loop_run.store)
    with Dataset.from_tables(sl, validate=True) as ds:
        score_dataset(ds, tmp_path / "run", stages=("graph",), seed=0, seed_pool=SeedPool.load(it / "seed_pool.parquet"),
                      run_id="iteration_1", now=row.window_end, decide_from=row.window_start)
    for name in ("accounts", "decisions"):
        pd.testing.assert_frame_equal(pd.read_parquet(it / f"{name}.parquet"),
                                      pd.read_parquet(tmp_path / "run" / f"{name}.parquet"))
    assert (tmp_path / "run" / "features").is_dir() and not (it / "features").exists()  # nothing in the loop reads it
    # nor the rules' row of every order and interaction: the loop's scores are the others, in the same order
    full = pd.read_parquet(tmp_path / "run" / "scores.parquet")
    events = (full["stage"] == "rules") & full["entity_type"].isin(["order", "interaction"])
    assert events.sum() == len(sl["orders"]) + len(sl["interactions"])
    pd.testing.assert_frame_equal(pd.read_parquet(it / "scores.parquet"), full[~events].reset_index(drop=True),
                                  check_exact=True)
    prints = [json.loads((loop_run.out_dir / "loop" / f"iteration_{k}" / "run" / "manifest.json").read_text())
              ["data"]["fingerprint"] for k in (0, 1)]
    assert prints[0] != prints[1] and all(len(p) == 16 for p in prints)  # each slice named apart


def test_a_loop_started_in_a_second_process_writes_what_this_process_would(tmp_path):
    """start_closed_loop on a dataset folder: the same tables as run_closed_loop here, and finished_loop finds it for
    that data, windows and seed only."""
    from fraudkit.simulation import simulate

    data = tmp_path / "micro"
    simulate("micro", data, seed=0, progress=False)
    job = start_closed_loop(data, tmp_path / "apart", n_windows=2, stages=("graph",), seed=0)
    run_closed_loop(data, tmp_path / "here", n_windows=2, stages=("graph",), seed=0)
    apart, here = job.wait(), LoopResult.load(tmp_path / "here")
    for name in ("summary", "evaluation", "watched_products", "loop_labels", "early_warning"):
        pd.testing.assert_frame_equal(getattr(apart, name), getattr(here, name))
    pd.testing.assert_frame_equal(apart.seed_pool.table, here.seed_pool.table)
    assert finished_loop(tmp_path / "apart", data, n_windows=2, stages=("graph",), seed=0) is not None
    assert finished_loop(tmp_path / "apart", data, n_windows=2, seed=0) is None  # other stages
    assert finished_loop(tmp_path / "apart", data, n_windows=3, stages=("graph",), seed=0) is None
    (data / "accounts.parquet").unlink()
    assert finished_loop(tmp_path / "apart", data, n_windows=2, stages=("graph",), seed=0) is None  # other data


def test_a_failed_loop_in_a_second_process_says_why(tmp_path):
    (tmp_path / "empty").mkdir()
    job = start_closed_loop(tmp_path / "empty", tmp_path / "out", n_windows=2, seed=0)
    with pytest.raises(FraudkitError, match=r"(?s)closed loop in a second process failed.*missing required table accounts"):
        job.wait()
    assert not (tmp_path / "out").exists()
