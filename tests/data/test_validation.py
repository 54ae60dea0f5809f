"""One tiny dataset per contract rule, with exactly that problem."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import write_tables

from fraudkit.data.dataset import Dataset, load_dataset, validate_dataset
from fraudkit.data.validation import TIMESTAMP_MIN, check_tables
from fraudkit.errors import DataValidationError

NOW = dt.datetime(2024, 6, 1)




def _only_issue(tables, tmp_path, fmt="parquet"):
    report = validate_dataset(write_tables(tables, tmp_path / "d", fmt), now=NOW)
    assert not report.ok
    assert len(report.issues) == 1, report.describe()
    return report.issues[0]


def test_valid_tables_pass(tiny_dir):
    report = validate_dataset(tiny_dir, now=NOW)
    assert report.ok and report.issues == () and report.rejected == {}
    assert report.counts["interactions"] == 10 and report.counts["labels"] == 4
    assert "OK" in report.describe()


def test_missing_required_table(tiny_tables, tmp_path):
    del tiny_tables["accounts"], tiny_tables["bindings"], tiny_tables["logins"], tiny_tables["notes"]
    del tiny_tables["orders"], tiny_tables["coupon_claims"], tiny_tables["interactions"]
    report = validate_dataset(write_tables(tiny_tables, tmp_path / "d"), now=NOW)
    assert [i.problem for i in report.issues] == ["missing required table accounts",
                                                  "missing required table interactions"]
    assert report.issues[0].file == "accounts.parquet"
    assert "add accounts.parquet or accounts.csv" in report.issues[0].fix


def test_optional_tables_may_be_missing(tiny_tables, tmp_path):
    tables = {k: tiny_tables[k] for k in ("accounts", "interactions")}
    assert validate_dataset(write_tables(tables, tmp_path / "d"), now=NOW).ok


def test_missing_column(tiny_tables, tmp_path):
    tiny_tables["orders"] = tiny_tables["orders"].drop(columns="quantity")
    issue = _only_issue(tiny_tables, tmp_path)
    assert (issue.file, issue.column, issue.problem) == ("orders.parquet", "quantity", "missing column")
    assert "add the column" in issue.fix


def test_string_in_numeric_column(tiny_tables, tmp_path):
    tiny_tables["orders"]["quantity"] = ["1", "one", "2", "1"]
    issue = _only_issue(tiny_tables, tmp_path)
    assert (issue.file, issue.column, issue.n_rows) == ("orders.parquet", "quantity", 1)
    assert issue.example == "'one' (row order_id=7001)"
    assert "whole numbers" in issue.fix


def test_fractional_int_is_a_type_error(tiny_tables, tmp_path):
    tiny_tables["orders"]["quantity"] = [1.0, 1.5, 2.0, 1.0]
    issue = _only_issue(tiny_tables, tmp_path)
    assert issue.column == "quantity" and issue.example.startswith("'1.5'")


def test_whole_column_of_the_wrong_type(tiny_tables, tmp_path):
    tiny_tables["devices"]["first_seen"] = [1704067200, 1704153600, 1706788800]  # epoch seconds
    issue = _only_issue(tiny_tables, tmp_path)
    assert issue.column == "first_seen" and issue.problem.startswith("no value has type timestamp")
    assert "ISO-8601" in issue.fix


def test_unparsable_timestamp_in_csv(tiny_tables, tmp_path):
    tiny_tables["interactions"]["ts"] = tiny_tables["interactions"]["ts"].astype(str)
    tiny_tables["interactions"].loc[3, "ts"] = "2024-03-01 25:61"
    issue = _only_issue(tiny_tables, tmp_path, fmt="csv")
    assert (issue.file, issue.column) == ("interactions.csv", "ts")
    assert issue.example == "'2024-03-01 25:61' (row event_id=9003)"
    assert "use ISO-8601 such as 2024-11-11 20:00:00" in issue.fix


@pytest.mark.parametrize("bad", ["1989-12-31 23:59:59", "2025-06-02 00:00:00"])
def test_out_of_range_timestamp(tiny_tables, tmp_path, bad):
    tiny_tables["logins"].loc[1, "ts"] = pd.Timestamp(bad)
    issue = _only_issue(tiny_tables, tmp_path)
    assert (issue.column, issue.n_rows) == ("ts", 1)
    assert issue.example == f"'{bad}' (row login_id=1001)"
    assert f"{TIMESTAMP_MIN:%Y-%m-%d}" in issue.problem and "2025-06-01" in issue.problem


def test_null_in_required_column(tiny_tables, tmp_path):
    tiny_tables["interactions"].loc[[2, 5], "action"] = None
    issue = _only_issue(tiny_tables, tmp_path)
    assert (issue.column, issue.problem, issue.n_rows) == ("action", "null value in a required column", 2)
    assert issue.example == "NULL (row event_id=9002)"


def test_nullable_columns_accept_nulls(tiny_tables, tmp_path):
    tiny_tables["interactions"]["ip"] = None
    tiny_tables["orders"]["received_at"] = pd.NaT
    assert validate_dataset(write_tables(tiny_tables, tmp_path / "d"), now=NOW).ok


def test_duplicate_key(tiny_tables, tmp_path):
    acc = tiny_tables["accounts"]
    tiny_tables["accounts"] = pd.concat([acc, acc.iloc[[1]]], ignore_index=True)
    issue = _only_issue(tiny_tables, tmp_path)
    assert (issue.column, issue.problem, issue.n_rows) == ("account_id", "duplicate key", 2)
    assert issue.example == "account_id=2"
    assert issue.fix.startswith("remove or merge the duplicate rows")


def test_composite_duplicate_key(tiny_tables, tmp_path):
    b = tiny_tables["bindings"]
    extra = b.iloc[[0]].assign(binding_id="wx_other")
    tiny_tables["bindings"] = pd.concat([b, extra], ignore_index=True)
    issue = _only_issue(tiny_tables, tmp_path)
    assert issue.column == "account_id, provider" and issue.example == "account_id=1, provider=wechat"


def test_dangling_reference(tiny_tables, tmp_path):
    tiny_tables["orders"].loc[2, "product_id"] = 999
    issue = _only_issue(tiny_tables, tmp_path)
    assert (issue.column, issue.n_rows) == ("product_id", 1)
    assert issue.problem == "dangling reference: no such products.product_id"
    assert issue.example == "'999' (row order_id=7002)"


def test_reference_into_absent_table_is_not_checked(tiny_tables, tmp_path):
    del tiny_tables["devices"]
    assert validate_dataset(write_tables(tiny_tables, tmp_path / "d"), now=NOW).ok


def test_negative_amount_and_discount_above_one(tiny_tables, tmp_path):
    tiny_tables["orders"].loc[0, "paid_price"] = -5.0
    tiny_tables["products"].loc[1, "discount"] = 1.2
    report = validate_dataset(write_tables(tiny_tables, tmp_path / "d"), now=NOW)
    got = {(i.file, i.column, i.problem, i.example) for i in report.issues}
    assert got == {("products.parquet", "discount", "value above the maximum 1", "'1.2' (row product_id=801)"),
                   ("orders.parquet", "paid_price", "value below the minimum 0", "'-5.0' (row order_id=7000)")}


def test_value_outside_vocabulary(tiny_tables, tmp_path):
    tiny_tables["interactions"].loc[4, "action"] = "tip"
    issue = _only_issue(tiny_tables, tmp_path)
    assert (issue.column, issue.example) == ("action", "'tip' (row event_id=9004)")
    assert issue.fix == "use one of: view, like, collect, comment, share, follow"


def test_custom_typology_is_declared_by_its_prefix(tiny_tables, tmp_path):
    lab = pd.DataFrame({"entity_type": "account", "entity_id": tiny_tables["accounts"]["account_id"].iloc[:3],
                        "typology": ["fraud:review_spam", "honest:power_reviewer", "review_spam"], "campaign_id": None})
    issue = _only_issue({**tiny_tables, "labels": lab}, tmp_path)
    assert (issue.column, issue.problem) == ("typology", "value outside the vocabulary")
    assert issue.example.startswith("'review_spam'")
    assert issue.fix.endswith("; or declare a custom one as fraud:<snake_case_name> or honest:<snake_case_name>")


def test_promotion_ends_before_it_starts(tiny_tables, tmp_path):
    tiny_tables["promotions"].loc[0, "ends_at"] = tiny_tables["promotions"].loc[0, "starts_at"]
    issue = _only_issue(tiny_tables, tmp_path)
    assert (issue.file, issue.column) == ("promotions.parquet", "ends_at")
    assert issue.example.startswith("'2024-03-01 00:00:00 vs starts_at 2024-03-01 00:00:00'")


def test_order_received_before_it_was_placed(tiny_tables, tmp_path):
    tiny_tables["orders"].loc[3, "received_at"] = pd.Timestamp("2024-03-02 10:59")
    issue = _only_issue(tiny_tables, tmp_path)
    assert (issue.column, issue.problem) == ("received_at", "received_at before ts")
    assert "(row order_id=7003)" in issue.example


def test_nan_counts_as_missing_and_inf_as_bad(tiny_tables, tmp_path):
    tiny_tables["products"]["price"] = [np.nan, np.inf, 899.0]
    report = validate_dataset(write_tables(tiny_tables, tmp_path / "d"), now=NOW)
    assert sorted(i.problem for i in report.issues) == ["null value in a required column",
                                                       "value is not of type float"]


def test_every_problem_is_reported_at_once(tiny_tables, tmp_path):
    tiny_tables["interactions"] = tiny_tables["interactions"].drop(columns="target_id")
    acc = tiny_tables["accounts"]
    tiny_tables["accounts"] = pd.concat([acc, acc.iloc[[0]].assign(register_channel="web")], ignore_index=True)
    tiny_tables["devices"].loc[0, "os"] = "symbian"
    with pytest.raises(DataValidationError) as err:
        load_dataset(write_tables(tiny_tables, tmp_path / "d"), now=NOW)
    problems = [(i.file, i.column) for i in err.value.issues]
    assert ("interactions.parquet", "target_id") in problems
    assert ("accounts.parquet", "account_id") in problems
    assert ("devices.parquet", "os") in problems
    assert len(err.value.issues) == 3
    assert str(err.value).startswith("3 problem(s)") and str(err.value).count("\n  - ") == 3


def test_unreadable_file(tiny_tables, tmp_path):
    d = write_tables(tiny_tables, tmp_path / "d")
    (d / "merchants.parquet").write_bytes(b"this is not parquet")
    issue = validate_dataset(d, now=NOW).issues[0]
    assert (issue.file, issue.problem) == ("merchants.parquet", "the file cannot be read")


def test_table_stored_twice(tiny_tables, tmp_path):
    d = write_tables(tiny_tables, tmp_path / "d")
    tiny_tables["notes"].to_csv(d / "notes.csv", index=False)
    issue = validate_dataset(d, now=NOW).issues[0]
    assert issue.problem == "table notes is stored more than once"
    assert issue.example == "notes.parquet, notes.csv"


def test_check_tables_on_registered_frames(tiny_tables):
    import duckdb

    con = duckdb.connect()
    con.register("acc", tiny_tables["accounts"])
    out = check_tables(con, {}, now=NOW)
    assert [i.problem for i in out.report.fatal] == ["missing required table accounts",
                                                     "missing required table interactions"]


def test_in_memory_validation_names_the_table(tiny_tables):
    tiny_tables["interactions"].loc[0, "event_id"] = 9001
    with pytest.raises(DataValidationError) as err:
        Dataset.from_tables(tiny_tables, now=NOW)
    assert err.value.issues[0].file == "interactions (in memory)"
    assert err.value.issues[0].example == "event_id=9001"


def test_ragged_csv_is_unreadable_not_truncated(tiny_tables, tmp_path):
    d = write_tables(tiny_tables, tmp_path / "d")
    (d / "merchants.parquet").unlink()
    (d / "merchants.csv").write_text("merchant_id,category\n70,beauty\n71,electronics,extra,cells\n")
    issue = validate_dataset(d, now=NOW).issues[0]
    assert (issue.file, issue.problem) == ("merchants.csv", "the file cannot be read")
    assert issue.example


def test_semicolon_csv_is_read(tiny_tables, tmp_path):
    d = write_tables(tiny_tables, tmp_path / "d")
    (d / "merchants.parquet").unlink()
    tiny_tables["merchants"].to_csv(d / "merchants.csv", sep=";", index=False)
    ds = load_dataset(d, now=NOW)
    assert ds.to_pandas("merchants")["category"].tolist() == ["beauty", "electronics"]


def test_timezone_aware_timestamps_are_rejected(tiny_tables, tmp_path):
    tiny_tables["notes"]["created_at"] = tiny_tables["notes"]["created_at"].dt.tz_localize("Asia/Shanghai")
    issue = _only_issue(tiny_tables, tmp_path)
    assert issue.column == "created_at" and "TIME ZONE" in issue.problem
    assert "tz_localize(None)" in issue.fix


# --- issue 11: NaN text and one id type per entity ---------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_nan_in_a_required_float_is_refused_in_csv_and_parquet(tiny_tables, tmp_path, fmt):
    tiny_tables["products"]["price"] = tiny_tables["products"]["price"].astype(object)
    tiny_tables["products"].loc[1, "price"] = "NaN" if fmt == "csv" else float("nan")
    if fmt == "parquet":
        tiny_tables["products"]["price"] = tiny_tables["products"]["price"].astype(float)
    issue = _only_issue(tiny_tables, tmp_path, fmt)
    assert (issue.file, issue.column, issue.problem) == (f"products.{fmt}", "price", "null value in a required column")
    assert issue.example == ("'NaN' (row product_id=801)" if fmt == "csv" else "NULL (row product_id=801)")
    assert "NaN counts as empty" in issue.fix


def test_nan_text_in_a_nullable_float_is_missing_as_in_parquet(tiny_tables, tmp_path):
    tiny_tables["intelligence"]["price"] = tiny_tables["intelligence"]["price"].astype(float)
    csv = load_dataset(write_tables(tiny_tables, tmp_path / "c", "csv"), now=NOW)
    pq = load_dataset(write_tables(tiny_tables, tmp_path / "p"), now=NOW)
    pd.testing.assert_frame_equal(csv.to_pandas("intelligence"), pq.to_pandas("intelligence"))


def test_ids_of_one_entity_share_one_type_across_tables(tiny_tables, tmp_path):
    # accounts written as text digits (Parquet strings): the same keys as the integers elsewhere
    tiny_tables["accounts"]["account_id"] = tiny_tables["accounts"]["account_id"].astype(str)
    ds = load_dataset(write_tables(tiny_tables, tmp_path / "a"), now=NOW)
    assert {ds.schema(t)[c] for t, c in (("accounts", "account_id"), ("interactions", "account_id"),
                                          ("notes", "author_id"))} == {"int64"}
    # string account ids everywhere: notes follow (interactions.target_id holds both), products do not
    t = make_string_accounts(tiny_tables)
    ds = load_dataset(write_tables(t, tmp_path / "b"), now=NOW)
    assert ds.schema("notes")["note_id"] == ds.schema("interactions")["target_id"] == "string"
    assert ds.schema("accounts")["account_id"] == ds.schema("orders")["account_id"] == "string"
    assert ds.schema("products")["product_id"] == "int64"
    follows = ds.sql("select count(*) as n from interactions i join notes n on i.target_id = n.note_id")["n"][0]
    assert follows == 9  # every note interaction joins its note


def make_string_accounts(tables):
    acc = lambda v: None if pd.isna(v) else f"u{int(v)}"  # noqa: E731
    out = {}
    for name, df in tables.items():
        df = df.copy()
        for c in ("account_id", "author_id"):
            if c in df.columns:
                df[c] = df[c].map(acc)
        if name == "interactions":
            df["target_id"] = [acc(x) if a == "follow" else str(x) for a, x in zip(df["action"], df["target_id"])]
        if name == "labels":
            df["entity_id"] = [acc(e) if k == "account" else str(e) for k, e in zip(df["entity_type"], df["entity_id"])]
        out[name] = df
    return out


@pytest.mark.parametrize("bad", ["u1", "abc"])
def test_text_ids_where_the_same_entity_has_integers_elsewhere_are_named(tiny_tables, tmp_path, bad):
    ids = tiny_tables["accounts"]["account_id"].astype(object)
    ids[0] = bad
    if bad == "u1":  # every account id as text in accounts only
        ids = "u" + tiny_tables["accounts"]["account_id"].astype(str)
    tiny_tables["accounts"]["account_id"] = ids
    report = validate_dataset(write_tables(tiny_tables, tmp_path / "d", "csv"), now=NOW)
    issue = next(i for i in report.fatal if i.file == "accounts.csv")
    assert issue.column == "account_id" and issue.example.startswith(f"'{bad}'")
    assert "integers in bindings.csv (account_id)" in issue.problem
    assert "write the ids of one entity the same way in every table" in issue.fix
