import datetime as dt
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import write_tables

from fraudkit.cli import main
from fraudkit.data.dataset import (Dataset, dataset_fingerprint, find_table_files, load_dataset, sort_canonical,
                                    validate_dataset)
from fraudkit.errors import DataValidationError, FraudkitError, MissingInputError

NOW = dt.datetime(2024, 6, 1)




def test_load_parquet_dataset(tiny_dir, tiny_tables):
    ds = load_dataset(tiny_dir, now=NOW)
    assert ds.path == tiny_dir
    assert ds.tables[:3] == ("accounts", "bindings", "devices") and ds.tables[-1] == "labels"
    assert ds.has("orders") and not ds.has("features")
    t = ds.table("interactions")
    assert t.schema()["ts"].is_timestamp() and t.schema()["event_id"].is_integer()
    assert int(t.filter(t.action == "like").count().execute()) == 3
    got = ds.to_pandas("accounts", columns=["account_id", "phone"])
    pd.testing.assert_frame_equal(got, tiny_tables["accounts"][["account_id", "phone"]])
    assert ds.sql("select sum(quantity) as q from orders")["q"].tolist() == [5]
    # rows come in the canonical order (time column, then the other columns), whatever the file's order
    assert ds.labels["typology"].tolist() == sort_canonical(tiny_tables["labels"], "labels")["typology"].tolist()
    assert ds.count("interactions") == 10
    assert str(ds.to_pandas("orders")["ts"].dtype) == "datetime64[ns]"
    assert "interactions=10" in repr(ds)


def test_dataset_is_read_only_and_errors_are_clear(tiny_dir):
    ds = load_dataset(tiny_dir, now=NOW)
    with pytest.raises(AttributeError, match="read-only"):
        ds.path = "elsewhere"
    with pytest.raises(MissingInputError, match="no 'features' table"):
        ds.table("features")
    with pytest.raises(MissingInputError, match="no column.*'price'"):
        ds.to_pandas("orders", columns=["order_id", "price"])


def test_labels_absent():
    ds = Dataset.from_tables({"accounts": _tiny("accounts"), "interactions": _tiny("interactions")}, now=NOW)
    assert ds.labels is None and ds.tables == ("accounts", "interactions")


def _tiny(name):
    from conftest import make_tiny_tables

    return make_tiny_tables()[name]


def test_csv_loads_with_the_same_types_and_values_as_parquet(tiny_tables, tmp_path):
    pq = load_dataset(write_tables(tiny_tables, tmp_path / "pq"), now=NOW)
    csv = load_dataset(write_tables(tiny_tables, tmp_path / "csv", fmt="csv"), now=NOW)
    assert csv.tables == pq.tables
    for name in pq.tables:
        assert csv.schema(name) == pq.schema(name), name
        pd.testing.assert_frame_equal(csv.to_pandas(name), pq.to_pandas(name), check_dtype=True, obj=name)


def test_csv_string_ids_with_leading_zeros_stay_strings(tiny_tables, tmp_path):
    tiny_tables["merchants"]["merchant_id"] = ["070", "071"]
    tiny_tables["products"]["merchant_id"] = ["070", "071", "071"]
    ds = load_dataset(write_tables(tiny_tables, tmp_path / "d", fmt="csv"), now=NOW)
    assert ds.schema("merchants")["merchant_id"] == "string"
    assert ds.to_pandas("merchants")["merchant_id"].tolist() == ["070", "071"]


def test_folder_of_parquet_parts_and_extras(tiny_tables, tmp_path):
    d = write_tables({k: v for k, v in tiny_tables.items() if k != "interactions"}, tmp_path / "d")
    parts = d / "interactions"
    parts.mkdir()
    i = tiny_tables["interactions"].assign(extra_col="x")
    i.iloc[:4].to_parquet(parts / "part-0.parquet", index=False)
    i.iloc[4:].to_parquet(parts / "part-1.parquet", index=False)
    (d / "README.txt").write_text("ignored")
    ds = load_dataset(d, now=NOW)
    assert ds.count("interactions") == 10
    assert ds.to_pandas("interactions")["extra_col"].eq("x").all()
    found, issues = find_table_files(d)
    assert found["interactions"][0].file == "interactions/" and len(found["interactions"][1]) == 2
    assert issues == []


def test_fingerprint_is_content_based(tiny_tables, tmp_path):
    a = write_tables(tiny_tables, tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    fa, fb = load_dataset(a, now=NOW).fingerprint, load_dataset(b, now=NOW).fingerprint
    assert fa == fb and len(fa) == 16
    tiny_tables["orders"].loc[0, "quantity"] = 3
    tiny_tables["orders"].to_parquet(b / "orders.parquet", index=False)
    assert load_dataset(b, now=NOW).fingerprint != fa
    csv = write_tables({"accounts": tiny_tables["accounts"]}, tmp_path / "c", fmt="csv")
    before = dataset_fingerprint([csv / "accounts.csv"])
    (csv / "accounts.csv").write_text((csv / "accounts.csv").read_text().replace("app", "web"))
    assert dataset_fingerprint([csv / "accounts.csv"]) != before


def test_one_fingerprint_for_the_dataset_the_run_and_the_report(tiny_tables, tmp_path):
    from fraudkit.report import build

    a = write_tables(tiny_tables, tmp_path / "a")
    fp = dataset_fingerprint(a)
    assert load_dataset(a, now=NOW).fingerprint == fp
    assert build.dataset_fingerprint is dataset_fingerprint  # the report's run id hashes the same thing
    (a / "notes.txt").write_text("not a table")  # files outside the contract do not count
    assert dataset_fingerprint(a) == fp
    tiny_tables["accounts"].iloc[:-1].to_parquet(a / "accounts.parquet", index=False)
    assert dataset_fingerprint(a) != fp


def test_in_memory_tables_are_not_mutated(tiny_tables):
    before = {k: v.copy() for k, v in tiny_tables.items()}
    ds = Dataset.from_tables(tiny_tables, now=NOW)
    ds.to_pandas("orders")
    for k in before:
        pd.testing.assert_frame_equal(tiny_tables[k], before[k])
    assert Dataset.from_tables(before, now=NOW).fingerprint == ds.fingerprint
    with pytest.raises(FraudkitError, match="unknown table.*'order'"):
        Dataset.from_tables({"order": before["orders"]})


def test_tables_argument_loads_a_subset(tiny_dir):
    ds = load_dataset(tiny_dir, tables=["accounts", "orders"], now=NOW)
    assert ds.tables == ("accounts", "orders")
    with pytest.raises(FraudkitError, match="unknown table"):
        load_dataset(tiny_dir, tables=["order"])


def test_without_row_checks_bad_values_fail_loudly_when_queried(tiny_tables, tmp_path):
    tiny_tables["orders"]["quantity"] = ["1", "one", "2", "1"]
    ds = load_dataset(write_tables(tiny_tables, tmp_path / "d"), validate=False, now=NOW)
    assert ds.report.counts["orders"] == 4
    with pytest.raises(Exception, match="one"):
        ds.to_pandas("orders")


# --- quarantine ---------------------------------------------------------------------------


@pytest.fixture
def dirty(tiny_tables, tmp_path):
    """Row-level problems only: a negative price, a bad timestamp, an exact copy, a conflicting copy."""
    o = tiny_tables["orders"].astype({"ts": str})
    o.loc[1, "ts"] = "yesterday"
    o.loc[0, "paid_price"] = -1.0
    tiny_tables["orders"] = o
    i = tiny_tables["interactions"]
    tiny_tables["interactions"] = pd.concat([i, i.iloc[[0, 0]]], ignore_index=True)  # two exact copies
    d = tiny_tables["devices"]
    tiny_tables["devices"] = pd.concat([d, d.iloc[[2]].assign(model="X")], ignore_index=True)  # conflict
    return write_tables(tiny_tables, tmp_path / "dirty")


def test_quarantine_writes_and_counts_rejected_rows(dirty, tmp_path):
    q = tmp_path / "q"
    with pytest.raises(DataValidationError):
        load_dataset(dirty, now=NOW)
    ds = load_dataset(dirty, quarantine=q, now=NOW)
    rep = ds.report
    assert rep.ok and len(rep.issues) > 0 and rep.fatal == ()
    # device 102 has two differing rows: both quarantined, and everything that uses it cascades
    assert rep.rejected["devices"] == 2
    dev = pd.read_parquet(q / "devices.parquet")
    assert dev["device_id"].tolist() == [102, 102]
    assert dev["_reason"].eq("duplicate key with differing rows").all()
    # interactions: 2 exact copies of event 9000 + 4 on device 102
    inter = pd.read_parquet(q / "interactions.parquet")
    assert sorted(inter["event_id"]) == [9000, 9000, 9003, 9004, 9005, 9006]
    assert (inter["_reason"] == "exact copy of another row").sum() == 2
    assert ds.count("interactions") == 6 and 9000 in set(ds.to_pandas("interactions")["event_id"])
    orders = pd.read_parquet(q / "orders.parquet").set_index("order_id")["_reason"]
    assert "paid_price: below 0" in orders[7000] and "ts: not timestamp" in orders[7001]
    assert "references a quarantined row in devices" in orders[7000]
    assert pd.read_parquet(q / "orders.parquet").loc[lambda f: f.order_id == 7001, "ts"].item() == "yesterday"
    # nothing dropped silently: clean + rejected == read
    for name in ds.tables:
        assert ds.count(name) + rep.rejected.get(name, 0) == rep.counts[name], name
    assert not [p for p in q.iterdir() if p.name.startswith(".")]  # atomic writes leave no temp files
    assert "rejected -> " in rep.describe()


def test_quarantine_removes_stale_files_and_keeps_fatal_errors(dirty, tmp_path):
    from conftest import make_tiny_tables

    tiny_tables = make_tiny_tables()
    q = tmp_path / "q"
    load_dataset(dirty, quarantine=q, now=NOW)
    clean = write_tables(tiny_tables, tmp_path / "clean")
    assert load_dataset(clean, quarantine=q, now=NOW).report.rejected == {}
    assert list(q.glob("*.parquet")) == []
    (dirty / "merchants.parquet").unlink()
    tiny_tables["merchants"].drop(columns="category").to_parquet(dirty / "merchants.parquet")
    with pytest.raises(DataValidationError, match="missing column"):
        load_dataset(dirty, quarantine=q, now=NOW)
    report = validate_dataset(dirty, quarantine=q, now=NOW)
    assert not report.ok and "Nothing was written" in report.describe()


# --- command line -------------------------------------------------------------------------


def test_cli_validate_good_folder_exits_0(tiny_dir):
    result = CliRunner().invoke(main, ["validate", str(tiny_dir)])
    assert result.exit_code == 0, result.output
    assert "OK: the data follows the contract." in result.output


def test_cli_validate_reports_every_problem_and_exits_1(tiny_tables, tmp_path):
    tiny_tables["notes"] = tiny_tables["notes"].drop(columns="category")
    acc = tiny_tables["accounts"]
    tiny_tables["accounts"] = pd.concat([acc, acc.iloc[[3]]], ignore_index=True)
    tiny_tables["logins"] = tiny_tables["logins"].astype({"ts": str})
    tiny_tables["logins"].loc[2, "ts"] = "03/01/2024 3am"
    d = write_tables(tiny_tables, tmp_path / "bad")
    result = CliRunner().invoke(main, ["validate", str(d)])
    assert result.exit_code == 1
    out = result.output
    assert "FAILED: 3 problem(s)" in out
    assert "notes.parquet, column 'category': missing column" in out
    assert "accounts.parquet, column 'account_id': duplicate key (2 rows); e.g. account_id=4" in out
    assert "logins.parquet, column 'ts': value is not of type timestamp (1 rows); e.g. '03/01/2024 3am'" in out


def test_cli_validate_with_quarantine(dirty, tmp_path):
    q = tmp_path / "q"
    result = CliRunner().invoke(main, ["validate", str(dirty), "--quarantine", str(q)])
    assert result.exit_code == 0, result.output
    assert "quarantined to" in result.output and (q / "orders.parquet").exists()


# --- the simulator's output follows the contract ------------------------------------------


def test_simulated_dataset_loads(tmp_path):
    simulation = pytest.importorskip("fraudkit.simulation")
    tables = simulation.generate(simulation.load_scenario("micro"), seed=3)
    ds = Dataset.from_tables(tables)
    assert ds.report.ok and ds.report.issues == ()
    assert ds.count("interactions") == len(tables["interactions"]) > 0
    csv = load_dataset(write_tables(tables, tmp_path / "sim", fmt="csv"))
    assert csv.schema("orders") == ds.schema("orders")


def test_part_folders_skip_hidden_and_bookkeeping_files(tiny_tables, tmp_path):
    d = write_tables({k: v for k, v in tiny_tables.items() if k != "notes"}, tmp_path / "d")
    (d / "notes" / "_temporary").mkdir(parents=True)
    tiny_tables["notes"].to_parquet(d / "notes" / "part-0.parquet", index=False)
    tiny_tables["notes"].to_parquet(d / "notes" / ".part-0.parquet.tmp.parquet", index=False)
    tiny_tables["notes"].to_parquet(d / "notes" / "_temporary" / "attempt.parquet", index=False)
    (d / "notes" / "_SUCCESS").write_text("")
    assert load_dataset(d, now=NOW).count("notes") == len(tiny_tables["notes"])


# --- issue 11: one reader for every input ------------------------------------


def test_read_table_reads_a_folder_through_the_loader(tiny_tables, tmp_path):
    """Same bytes, same frame: comma or semicolon CSV, Parquet, read_table or load_dataset."""
    from fraudkit.data.dataset import read_table

    tiny_tables["accounts"]["phone"] = ["NA", "13912345678", None, "null", "17000000002", "17000000003"]
    pq = write_tables(tiny_tables, tmp_path / "pq")
    comma = write_tables(tiny_tables, tmp_path / "comma", fmt="csv")
    semi = tmp_path / "semi"
    semi.mkdir()
    for p in comma.glob("*.csv"):
        pd.read_csv(p, dtype=str, keep_default_na=False).to_csv(semi / p.name, sep=";", index=False)
    for name in ("accounts", "interactions", "orders", "products", "devices", "labels"):
        expected = load_dataset(pq, now=NOW).to_pandas(name)
        for d in (pq, comma, semi):
            pd.testing.assert_frame_equal(read_table(d, name), expected, obj=f"{d.name}/{name}")
            pd.testing.assert_frame_equal(load_dataset(d, now=NOW).to_pandas(name), expected)
    # 'NA' and 'null' are phone text, as the loader reads them (pandas alone would make them missing)
    assert read_table(semi, "accounts")["phone"].tolist()[:4] == ["NA", "13912345678", None, "null"]
    assert read_table(semi, "accounts", ["account_id", "nope"]).columns.tolist() == ["account_id"]
    with pytest.raises(MissingInputError, match="accounts: missing column"):
        read_table(semi, "accounts", ["account_id", "nope"], required=True)
    assert read_table(semi, "no_such_table") is None


def test_read_table_keeps_partial_tables_and_refuses_unreadable_files(tiny_tables, tmp_path):
    from fraudkit.data.dataset import read_table

    d = write_tables(tiny_tables, tmp_path / "d", fmt="csv")
    pd.read_csv(d / "orders.csv").drop(columns=["paid_price"]).to_csv(d / "orders.csv", index=False)
    assert "paid_price" not in read_table(d, "orders").columns  # partial data still reads
    (d / "notes.csv").write_bytes("note_id,author_id,created_at,category\n1,1,2024-01-01,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataValidationError, match=r"notes.csv: the file cannot be read.*UTF-8"):
        read_table(d, "notes")
    assert (d / "notes.csv").exists()


def test_duplicated_csv_header_is_refused(tiny_tables, tmp_path):
    from fraudkit.data.dataset import read_table

    d = write_tables(tiny_tables, tmp_path / "d", fmt="csv")
    acc = pd.read_csv(d / "accounts.csv", dtype=str)
    pd.concat([acc, acc[["phone"]]], axis=1).to_csv(d / "accounts.csv", index=False)
    report = validate_dataset(d, now=NOW)
    [issue] = report.fatal
    assert (issue.file, issue.column) == ("accounts.csv", "phone")
    assert "names the column 'phone' 2 times" in issue.problem and "keep one column" in issue.fix
    with pytest.raises(DataValidationError, match="accounts.csv, column 'phone'"):
        read_table(d, "accounts")
    assert (d / "accounts.csv").exists()


def test_header_only_optional_table_is_absent_and_required_one_is_refused(tiny_tables, tmp_path):
    from fraudkit.data.dataset import read_table

    tiny_tables["coupon_claims"] = tiny_tables["coupon_claims"].iloc[:0]
    d = write_tables(tiny_tables, tmp_path / "d", fmt="csv")
    ds = load_dataset(d, now=NOW)
    assert not ds.has("coupon_claims") and ds.report.counts["coupon_claims"] == 0
    assert "no rows: treated as absent" in ds.report.describe()
    assert read_table(d, "coupon_claims") is None
    pd.read_csv(d / "accounts.csv").iloc[:0].to_csv(d / "accounts.csv", index=False)
    report = validate_dataset(d, now=NOW)
    assert "accounts.csv: table accounts has no rows" in str(report.fatal[0])
