"""Tests of fraudkit.simulation: contract conformance, determinism, scenarios, writing."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pandas as pd
import pytest

from fraudkit.data.contract import FRAUD_TYPOLOGIES, HONEST_LOOKALIKES, LABEL_TABLE, TABLES
from fraudkit.data.labels import OWN_FRAUD_TYPOLOGY
from fraudkit.pipeline.progress import Progress
from fraudkit.simulation import ScenarioError, generate, list_scenarios, load_scenario, simulate

_DTYPES = {"id": "int64", "int": "int64", "float": "float64", "bool": "bool", "timestamp": "datetime64[us]",
           "string": "object"}


@pytest.fixture(scope="module")
def micro():
    return generate(load_scenario("micro"))


def _contract_problems(tables) -> list[str]:
    """Every way ``tables`` breaks the contract: names, dtypes, nulls, keys, vocabularies, references."""
    problems = []
    for name, df in tables.items():
        spec = LABEL_TABLE if name == "labels" else TABLES[name]
        if tuple(df.columns) != spec.column_names:
            problems.append(f"{name}: columns {list(df.columns)}")
            continue
        for col in spec.columns:
            s = df[col.name]
            want = "Int64" if (col.dtype == "id" and col.nullable) else _DTYPES[col.dtype]
            if str(s.dtype) != want:
                problems.append(f"{name}.{col.name}: dtype {s.dtype}, want {want}")
            if not col.nullable and s.isna().any():
                problems.append(f"{name}.{col.name}: {int(s.isna().sum())} nulls")
            if col.allowed and not s.dropna().isin(col.allowed).all():
                problems.append(f"{name}.{col.name}: values {set(s.dropna()) - set(col.allowed)}")
            if col.min_value is not None and (s.dropna() < col.min_value).any():
                problems.append(f"{name}.{col.name}: below {col.min_value}")
            if col.max_value is not None and (s.dropna() > col.max_value).any():
                problems.append(f"{name}.{col.name}: above {col.max_value}")
            if col.references:
                t, c = col.references.split(".")
                if t in tables and not s.dropna().isin(tables[t][c]).all():
                    problems.append(f"{name}.{col.name}: dangling references into {col.references}")
        if df.duplicated(list(spec.primary_key)).any():
            problems.append(f"{name}: duplicate primary key")
    return problems


def _digest(tables) -> str:
    h = hashlib.sha256()
    for name in sorted(tables):
        h.update(name.encode())
        h.update(pd.util.hash_pandas_object(tables[name], index=False).to_numpy().tobytes())
    return h.hexdigest()


def test_micro_passes_the_contract(micro):
    assert set(micro) == set(TABLES) | {"labels"}
    assert _contract_problems(micro) == []


def test_micro_references_hold_beyond_foreign_keys(micro):
    it, notes, acc = micro["interactions"], micro["notes"], micro["accounts"]
    follow = it["action"] == "follow"
    assert it.loc[~follow, "target_id"].isin(notes["note_id"]).all()
    assert it.loc[follow, "target_id"].isin(acc["account_id"]).all()
    lab = micro["labels"]
    for et, table, key in (("account", "accounts", "account_id"), ("device", "devices", "device_id"),
                           ("note", "notes", "note_id"), ("interaction", "interactions", "event_id"),
                           ("order", "orders", "order_id"), ("coupon_claim", "coupon_claims", "claim_id")):
        assert lab.loc[lab.entity_type == et, "entity_id"].isin(micro[table][key]).all(), et
    orders, claims = micro["orders"], micro["coupon_claims"]
    assert orders["coupon_id"].dropna().isin(claims["coupon_id"]).all()
    assert (orders["received_at"].dropna() > orders.loc[orders["received_at"].notna(), "ts"]).all()
    # no one acts before registering
    first = it.groupby("account_id")["ts"].min()
    reg = acc.set_index("account_id")["registered_at"]
    assert (first >= reg.reindex(first.index)).all()


def test_time_is_consistent(micro):
    """Nothing happens before the thing it needs: registration, device first sight, publication."""
    acc = micro["accounts"].set_index("account_id")["registered_at"]
    dev = micro["devices"].set_index("device_id")["first_seen"]
    for name in ("interactions", "orders", "coupon_claims", "logins", "bindings"):
        df = micro[name]
        ts = df["bound_at"] if name == "bindings" else df["ts"]
        assert (ts >= df["account_id"].map(acc)).all(), name
        if "device_id" in df:
            used = df.dropna(subset=["device_id"])
            first = used.groupby("device_id")["ts"].min()
            assert (first >= dev.reindex(first.index.astype("int64")).to_numpy()).all(), name
    notes = micro["notes"]
    assert (notes["created_at"] >= notes["author_id"].map(acc)).all()
    views = micro["interactions"].query("action == 'view'")
    assert (views["ts"] >= views["target_id"].map(notes.set_index("note_id")["created_at"])).all()
    start = pd.Timestamp(load_scenario("micro").start)
    for name in ("interactions", "orders", "coupon_claims", "logins"):
        assert micro[name]["ts"].between(start, start + pd.Timedelta(days=7)).all(), name


_OPT_IN_LOOKALIKES = {"honest_carrier_nat", "honest_group_buy"}  # off by default: earlier worlds unchanged


def test_micro_has_every_typology_and_lookalike(micro):
    typs = set(micro["labels"]["typology"])
    assert set(FRAUD_TYPOLOGIES) - {OWN_FRAUD_TYPOLOGY} <= typs and OWN_FRAUD_TYPOLOGY not in typs
    assert set(HONEST_LOOKALIKES) - _OPT_IN_LOOKALIKES <= typs and not _OPT_IN_LOOKALIKES & typs


@pytest.fixture(scope="module")
def shared_infra(tmp_path_factory):
    """micro with carrier NAT look-alikes, group buys, attackers on carrier NAT and crowd scalpers shipping home."""
    path = tmp_path_factory.mktemp("scen") / "shared.yaml"
    path.write_text("extends: micro\nlookalikes: {carrier_nat_ips: 3, accounts_per_carrier_nat: 50, group_buys: 3}\n"
                    "attackers:\n  coupon_abuser: {carrier_nat: 0.5}\n  crowd_scalper: {home_fraction: 0.5}\n")
    return generate(load_scenario(path))


def test_carrier_nat_lookalikes_share_one_ip_each_all_day(shared_infra):
    lab, logins = shared_infra["labels"], shared_infra["logins"]
    nat = lab[lab["typology"] == "honest_carrier_nat"]
    assert nat["campaign_id"].nunique() == 3 and nat["entity_id"].is_unique
    assert not set(nat["entity_id"]) & set(lab.loc[lab["typology"] == "honest_shared_ip", "entity_id"])
    ips = {".".join(str((int(c) >> s) & 255) for s in (24, 16, 8, 0)) for c in nat["campaign_id"].unique()}
    use = logins[logins["ip"].isin(ips)]
    per_ip = use.groupby("ip").agg(accounts=("account_id", "nunique"), hours=("ts", lambda t: t.dt.hour.nunique()))
    assert (per_ip["accounts"] >= 10).all() and (per_ip["hours"] >= 12).all()
    # mostly its members; coupon abusers routed through carrier NAT appear there too
    members = set(nat["entity_id"])
    assert use["account_id"].isin(members).mean() > 0.8
    ab = lab.loc[(lab["typology"] == "coupon_abuser") & (lab["entity_type"] == "account"), "entity_id"]
    claims = shared_infra["coupon_claims"]
    assert claims.loc[claims["account_id"].isin(ab), "ip"].isin(ips).mean() > 0.2


def test_group_buys_ship_one_item_to_one_office(shared_infra):
    lab, orders = shared_infra["labels"], shared_infra["orders"]
    gb = lab[lab["typology"] == "honest_group_buy"]
    assert len(gb) >= 9 and gb["entity_id"].is_unique
    for product, g in gb.groupby("campaign_id"):
        o = orders[orders["account_id"].isin(g["entity_id"]) & (orders["product_id"] == product)]
        office = o[o["address"] == o["address"].mode().iloc[0]]  # (a member may also buy it on another day)
        assert office["account_id"].nunique() == len(g) and office["address"].iloc[0].endswith("楼前台")
        assert office["ts"].max() - office["ts"].min() <= pd.Timedelta(hours=1)


def test_crowd_scalpers_ship_partly_home(micro, shared_infra):
    def home_share(tables):
        lab, orders = tables["labels"], tables["orders"]
        crowd = lab.loc[(lab["typology"] == "crowd_scalper") & (lab["entity_type"] == "order"), "entity_id"]
        addr = orders.loc[orders["order_id"].isin(crowd), "address"]
        return (~addr.str.endswith("菜鸟驿站")).mean()

    assert home_share(micro) == 0.0 and 0.3 < home_share(shared_infra) < 0.7


def test_ids_are_unique_int64_and_shuffled(micro):
    acc = micro["accounts"]["account_id"].to_numpy()
    assert acc.dtype == np.int64 and len(np.unique(acc)) == len(acc) and (acc > 0).all()
    ev = micro["interactions"]
    # ids are not in time order: the correlation of event_id with time is near zero
    r = np.corrcoef(ev["event_id"].to_numpy(), ev["ts"].astype("int64").to_numpy())[0, 1]
    assert abs(r) < 0.1


def test_same_seed_same_tables_and_different_seed_differs():
    a = generate("micro")
    b = generate("micro")
    c = generate("micro", seed=8)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)
    assert len(a["accounts"]) == len(c["accounts"])


def test_changing_one_typology_leaves_other_campaigns_alone(tmp_path):
    base = load_scenario("micro")
    text = (load_scenario.__globals__["SCENARIO_DIR"] / "micro.yaml").read_text()
    other = tmp_path / "other.yaml"
    other.write_text(text.replace("coupon_abuser: {campaigns: 2, accounts_per_campaign: 8",
                                  "coupon_abuser: {campaigns: 2, accounts_per_campaign: 12"))
    a, b = generate(base), generate(load_scenario(other))
    la, lb = a["labels"], b["labels"]
    for typ in ("device_farm", "offline_script"):
        ia = la.loc[(la.typology == typ) & (la.entity_type == "account"), "entity_id"]
        ib = lb.loc[(lb.typology == typ) & (lb.entity_type == "account"), "entity_id"]
        assert sorted(ia) == sorted(ib)
    assert (lb.typology == "coupon_abuser").sum() > (la.typology == "coupon_abuser").sum()


def test_list_scenarios_names_every_yaml():
    names = list_scenarios()
    assert {"micro", "demo-small", "community", "ecommerce-promo", "evasive", "medium", "large"} <= set(names)
    assert all(names.values())


def test_load_scenario_fills_defaults_and_extends():
    ev = load_scenario("evasive")
    demo = load_scenario("demo-small")
    assert ev.population == demo.population
    assert ev.attackers.device_farm.rate_scale == 0.1
    assert ev.attackers.device_farm.campaigns == demo.attackers.device_farm.campaigns
    assert load_scenario(ev) is ev


def test_builtin_name_wins_over_a_folder_or_file_of_that_name(tmp_path, monkeypatch):
    """Issue 13: ``simulate --scenario community`` next to a dataset folder named ``demo-small`` (its base)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo-small").mkdir()
    (tmp_path / "evasive").write_text("days: 3\n")  # a file without a .yaml suffix is not the scenario either
    assert load_scenario("community").population.n_accounts == 8000
    assert load_scenario("evasive").days == load_scenario("demo-small").days != 3
    (tmp_path / "mine.yaml").write_text("extends: demo-small\ndays: 3\n")
    assert load_scenario("mine.yaml").days == 3  # a path is still a path
    (tmp_path / "mine").write_text("days: 4\n")
    assert load_scenario("mine").days == 4  # a name that is no built-in may be a file


def test_medium_is_a_tenth_of_large():
    medium, large = load_scenario("medium"), load_scenario("large")
    assert medium.population.n_accounts * 10 == large.population.n_accounts
    assert medium.days == large.days


def test_unknown_key_is_rejected_with_file_and_key(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("days: 3\nattackers:\n  device_farm: {campaigns: 1, acounts_per_campaign: 3}\n")
    with pytest.raises(ScenarioError, match=r"bad\.yaml.*acounts_per_campaign.*attackers\.device_farm"):
        load_scenario(p)


def test_bad_value_type_and_missing_scenario(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("days: many\n")
    with pytest.raises(ScenarioError, match="'days' must be int"):
        load_scenario(p)
    with pytest.raises(ScenarioError, match="no scenario named 'nope'.*micro"):
        load_scenario("nope")


def test_community_only_has_no_shop_tables():
    s = load_scenario("micro")
    import dataclasses
    s = dataclasses.replace(s, ecommerce=dataclasses.replace(s.ecommerce, enabled=False),
                            attackers=dataclasses.replace(
                                s.attackers, **{k: dataclasses.replace(getattr(s.attackers, k), campaigns=0)
                                                for k in ("group_scalper", "crowd_scalper", "coupon_abuser")}))
    t = generate(s)
    assert "orders" not in t and "products" not in t
    assert _contract_problems(t) == []


def test_simulate_writes_every_table_atomically(tmp_path):
    out = tmp_path / "data"
    summary = simulate("micro", out, progress=False)
    files = {p.name for p in out.iterdir()}
    assert {f"{t}.parquet" for t in TABLES} <= files
    assert {"labels.parquet", "scenario.yaml", "manifest.json"} <= files
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 7 and manifest["counts"] == summary.counts
    mem = generate("micro")
    back = pd.read_parquet(out / "interactions.parquet")
    assert len(back) == summary.counts["interactions"] == len(mem["interactions"])
    assert back["event_id"].tolist() == mem["interactions"]["event_id"].tolist()
    assert "device_farm" in summary.describe()
    assert load_scenario(out / "scenario.yaml").attackers == load_scenario("micro").attackers


def test_same_seed_gives_byte_identical_folders_and_fingerprint(tmp_path):
    """Run ids and reports hash the dataset folder: nothing in it may depend on the clock."""
    from fraudkit.data.dataset import dataset_fingerprint

    a, b = tmp_path / "a", tmp_path / "b"
    simulate("micro", a, progress=False)
    simulate("micro", b, progress=False)
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert [p.name for p in a.iterdir() if (a / p.name).read_bytes() != (b / p.name).read_bytes()] == []
    assert dataset_fingerprint(a) == dataset_fingerprint(b)
    simulate("micro", b, seed=8, progress=False)
    assert dataset_fingerprint(a) != dataset_fingerprint(b)


def test_simulate_csv_and_bad_format(tmp_path):
    s = simulate("micro", tmp_path / "csv", fmt="csv", progress=False)
    for name in ("orders", "coupon_claims", "interactions"):  # chunks appended under one header
        back = pd.read_csv(tmp_path / "csv" / f"{name}.csv")
        assert len(back) == s.counts[name]
        assert not back.iloc[:, 0].astype(str).str.contains("_id").any()
    from fraudkit.errors import FraudkitError
    with pytest.raises(FraudkitError, match="unknown format"):
        simulate("micro", tmp_path / "x", fmt="xlsx", progress=False)
    assert not (tmp_path / "x").exists()


def test_cli_simulate_and_validate(tmp_path):
    from click.testing import CliRunner

    from fraudkit.cli import main

    r = CliRunner().invoke(main, ["simulate", "--scenario", "micro", "--out", str(tmp_path / "d"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "labelled entities" in r.output
    try:
        from fraudkit.data.dataset import validate_dataset  # noqa: F401
    except ImportError:
        pytest.skip("fraudkit.data.dataset is not there yet")
    r = CliRunner().invoke(main, ["validate", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output


def test_simulate_reports_its_steps_to_a_progress_reporter(tmp_path):
    out = io.StringIO()
    simulate("micro", tmp_path / "d", seed=0, progress=Progress("simulate", stream=out))
    text = out.getvalue()
    assert "micro · build the world (seed 0): accounts, devices, campaigns: done" in text
    assert "micro · events: day 1/7" in text and "micro · events day by day (7 days): done" in text
    assert "\r" not in text
