"""Hostile inputs: every corruption the validator knows, on a CSV copy of the ``micro`` world.

Each case corrupts one table of a clean CSV dataset and must end, within a time limit and without a
traceback, either in a clear error that names the file and the column (and leaves the inputs in place) or
in the same tables as the clean data. The id cases (issue 11, item 3) also score the data: ids of one
entity are compared with one type in every table.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from fraudkit.cli import main
from fraudkit.data.dataset import load_dataset, read_table, validate_dataset
from fraudkit.pipeline.score import score_dataset
from fraudkit.simulation import simulate

LIMIT = 30.0  # seconds per case


@pytest.fixture(scope="module")
def clean_parquet(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile") / "micro"
    simulate("micro", out, seed=3, progress=False)
    return out


@pytest.fixture(scope="module")
def clean_csv(clean_parquet):
    """The micro world as CSV, nullable integer ids written as integers (not pandas' ``123.0``)."""
    out = clean_parquet.parent / "micro_csv"
    out.mkdir()
    for p in clean_parquet.glob("*.parquet"):
        df = pd.read_parquet(p)
        for c in df.columns:
            if c.endswith("_id") and df[c].dtype == "float64":
                df[c] = df[c].astype("Int64")
        df.to_csv(out / f"{p.stem}.csv", index=False)
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _text(folder, name):
    return (folder / f"{name}.csv").read_text(encoding="utf-8")


def _edit_cell(folder, name, column, row, value):
    df = pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False)
    df.loc[row, column] = value
    df.to_csv(folder / f"{name}.csv", index=False)


def _edit_frame(folder, name, fn):
    df = pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False)
    fn(df).to_csv(folder / f"{name}.csv", index=False)


def _missing_column(d):
    _edit_frame(d, "orders", lambda df: df.drop(columns=["paid_price"]))


def _extra_column(d):
    _edit_frame(d, "orders", lambda df: df.assign(note="<b>extra</b>"))


def _wrong_type(d):
    _edit_cell(d, "orders", "quantity", 3, "three")


def _duplicate_key(d):
    _edit_frame(d, "devices", lambda df: pd.concat([df, df.iloc[[0]].assign(model="other")]))


def _dangling(d):
    _edit_cell(d, "logins", "account_id", 2, "999999999999")


def _bad_time(d):
    _edit_cell(d, "interactions", "ts", 5, "2024-13-45 25:00:00")


def _time_unit(d):
    _edit_cell(d, "accounts", "registered_at", 5, "1700000000000")


def _nan_float(d):
    _edit_cell(d, "products", "price", 3, "nan")


def _inf_float(d):
    _edit_cell(d, "products", "price", 3, "inf")


def _semicolon(d):
    for p in d.glob("*.csv"):
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
        df.to_csv(p, index=False, sep=";")


def _crlf_bom(d):
    p = d / "accounts.csv"
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes().replace(b"\n", b"\r\n"))


def _ragged(d):
    p = d / "notes.csv"
    lines = p.read_text().splitlines()
    lines[4] += ",surplus,cells"
    p.write_text("\n".join(lines) + "\n")


def _latin1(d):
    _edit_cell(d, "notes", "category", 2, "caf\u00e9")
    p = d / "notes.csv"
    p.write_bytes(p.read_text(encoding="utf-8").encode("latin-1"))


def _huge_cell(d):
    _edit_cell(d, "list_entries", "reason", 0, "x" * (1 << 20))


def _markup_formula(d):
    _edit_cell(d, "list_entries", "reason", 0, '=HYPERLINK("http://x","y")')
    _edit_cell(d, "list_entries", "list_name", 1, "<script>alert(1)</script>")
    _edit_cell(d, "notes", "category", 0, "+cmd|' /C calc'!A0")


def _duplicate_header(d):
    _edit_frame(d, "accounts", lambda df: pd.concat([df, df[["phone"]]], axis=1))


def _empty_optional(d):
    for name in ("orders", "logins", "notes"):
        p = d / f"{name}.csv"
        p.write_text(p.read_text().splitlines()[0] + "\n")


def _empty_required(d):
    p = d / "interactions.csv"
    p.write_text(p.read_text().splitlines()[0] + "\n")


def _non_numeric_id(d):
    _edit_frame(d, "accounts", lambda df: pd.concat([df, df.iloc[[0]].assign(account_id="abc")]))


def _text_vs_int_ids(d):
    _edit_frame(d, "accounts", lambda df: df.assign(account_id="acct_" + df["account_id"]))


# case -> (corrupt, None for "loads like the clean data" or (file, column, words the message must hold))
CASES = {
    "missing column": (_missing_column, ("orders.csv", "paid_price", "missing column")),
    "extra column": (_extra_column, None),
    "wrong type": (_wrong_type, ("orders.csv", "quantity", "'three'")),
    "duplicate key": (_duplicate_key, ("devices.csv", "device_id", "duplicate key")),
    "dangling reference": (_dangling, ("logins.csv", "account_id", "999999999999")),
    "bad timestamp": (_bad_time, ("interactions.csv", "ts", "2024-13-45")),
    "epoch milliseconds": (_time_unit, ("accounts.csv", "registered_at", "1700000000000")),
    "nan in a required float": (_nan_float, ("products.csv", "price", "'nan'")),
    "inf in a float": (_inf_float, ("products.csv", "price", "'inf'")),
    "semicolon dialect": (_semicolon, None),
    "CRLF and BOM": (_crlf_bom, None),
    "ragged row": (_ragged, ("notes.csv", None, "cannot be read")),
    "latin-1 encoding": (_latin1, ("notes.csv", None, "UTF-8")),
    "1 MB cell": (_huge_cell, None),
    "markup and formula text": (_markup_formula, None),
    "duplicated header": (_duplicate_header, ("accounts.csv", "phone", "2 times")),
    "empty optional tables": (_empty_optional, None),
    "empty required table": (_empty_required, ("interactions.csv", None, "has no rows")),
    "non-numeric id": (_non_numeric_id, ("accounts.csv", "account_id", "'abc'")),
    "text ids vs integer ids": (_text_vs_int_ids, ("accounts.csv", "account_id", "integers in")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_ends_in_a_clear_error_or_the_clean_result(case, clean_csv, tmp_path):
    corrupt, expected = CASES[case]
    d = _copy(clean_csv, tmp_path / "data")
    corrupt(d)
    files = sorted(p.name for p in d.iterdir())
    t = time.perf_counter()
    r = CliRunner().invoke(main, ["validate", str(d)])
    report = validate_dataset(d)
    elapsed = time.perf_counter() - t
    assert elapsed < LIMIT, f"{case}: {elapsed:.1f}s"
    assert "Traceback" not in r.output and (r.exception is None or isinstance(r.exception, SystemExit)), r.output
    assert sorted(p.name for p in d.iterdir()) == files  # nothing deleted or added
    if expected is None:
        assert report.ok, report.describe()
        assert r.exit_code == 0, r.output
        clean = validate_dataset(clean_csv)
        same = {t: n for t, n in clean.counts.items() if n}
        got = {t: n for t, n in report.counts.items() if n}
        if case == "empty optional tables":
            assert "no rows: treated as absent" in r.output
            same = {t: n for t, n in same.items() if t not in ("orders", "logins", "notes")}
        assert got == same
        return
    file, column, words = expected
    assert not report.ok and r.exit_code != 0, r.output
    hits = [i for i in report.fatal if i.file == file and (column is None or i.column == column)]
    assert hits, report.describe()
    text = " ".join(str(i) for i in hits)
    assert words in text and "Fix:" in text
    assert file in r.output and words in r.output


def test_semicolon_and_comma_csv_read_the_same_everywhere(clean_parquet, clean_csv, tmp_path):
    semi = _copy(clean_csv, tmp_path / "semi")
    _semicolon(semi)
    for name in ("accounts", "interactions", "orders", "products", "labels"):
        comma = read_table(clean_csv, name)
        pd.testing.assert_frame_equal(read_table(semi, name), comma)
        pd.testing.assert_frame_equal(load_dataset(semi).to_pandas(name), comma)
        pd.testing.assert_frame_equal(read_table(clean_parquet, name), comma)


def _string_account_ids(src: Path, dst: Path) -> Path:
    """Every account id as ``acct_<n>`` in every table; note ids stay integers (target_id then mixes both)."""
    dst.mkdir()
    acc = lambda v: None if pd.isna(v) else f"acct_{int(v)}"  # noqa: E731
    for p in src.glob("*.parquet"):
        df = pd.read_parquet(p)
        for c in ("account_id", "author_id"):
            if c in df.columns:
                df[c] = df[c].map(acc)
        if p.stem == "interactions":
            df["target_id"] = [acc(t) if a == "follow" else str(t) for a, t in zip(df["action"], df["target_id"])]
        if p.stem == "labels":
            df["entity_id"] = [acc(e) if k == "account" else str(e) for k, e in zip(df["entity_type"], df["entity_id"])]
        df.to_parquet(dst / p.name, index=False)
    return dst


def test_string_account_ids_with_integer_note_ids_score_like_the_clean_data(clean_parquet, tmp_path):
    strings = _string_account_ids(clean_parquet, tmp_path / "strings")
    with load_dataset(strings) as ds:  # one type per entity: notes follow accounts through target_id
        assert ds.schema("notes")["note_id"] == ds.schema("interactions")["target_id"] == "string"
        assert ds.schema("accounts")["account_id"] == ds.schema("interactions")["account_id"] == "string"
        assert ds.schema("products")["product_id"] == "int64"
    assert read_table(strings, "notes")["note_id"].map(type).eq(str).all()  # a single table reads the same
    clean = score_dataset(clean_parquet, tmp_path / "run_clean", stages=("graph",))
    mixed = score_dataset(strings, tmp_path / "run_strings", stages=("graph",))
    assert mixed.n_flagged == clean.n_flagged


def test_text_digit_ids_in_one_parquet_table_join_the_integers(clean_parquet, tmp_path):
    d = _copy(clean_parquet, tmp_path / "data")
    acc = pd.read_parquet(d / "accounts.parquet")
    acc.assign(account_id=acc["account_id"].astype(str)).to_parquet(d / "accounts.parquet", index=False)
    with load_dataset(d) as ds:
        assert ds.schema("accounts")["account_id"] == ds.schema("logins")["account_id"] == "int64"
    pd.testing.assert_frame_equal(read_table(d, "accounts"), read_table(clean_parquet, "accounts"))


def test_cli_refuses_a_non_numeric_id_before_scoring(clean_csv, tmp_path):
    d = _copy(clean_csv, tmp_path / "data")
    _non_numeric_id(d)
    r = CliRunner().invoke(main, ["score", str(d), "--out", str(tmp_path / "run")])
    assert r.exit_code in (1, 2) and "Traceback" not in r.output and "Conversion" not in r.output, r.output
    assert "accounts.csv" in r.output and "'account_id'" in r.output and "'abc'" in r.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("which", ["all", "some"])
def test_header_only_tables_validate_and_score_alike(clean_csv, tmp_path, which):
    d = _copy(clean_csv, tmp_path / "data")
    for p in d.glob("*.csv") if which == "all" else [d / "orders.csv", d / "logins.csv", d / "notes.csv"]:
        p.write_text(p.read_text().splitlines()[0] + "\n")
    v = CliRunner().invoke(main, ["validate", str(d)])
    s = CliRunner().invoke(main, ["score", str(d), "--out", str(tmp_path / "run")])
    for r in (v, s):
        assert "Traceback" not in r.output, r.output
    if which == "all":
        assert v.exit_code in (1, 2) and s.exit_code in (1, 2), (v.output, s.output)
        for r in (v, s):
            assert "accounts.csv: table accounts has no rows" in r.output
            assert "interactions.csv: table interactions has no rows" in r.output
    else:
        assert v.exit_code == s.exit_code == 0, (v.output, s.output)
        assert "orders" in v.output and "no rows: treated as absent" in v.output
        assert "skipped: the dataset has no orders table" in s.output
        assert read_table(d, "orders") is None
