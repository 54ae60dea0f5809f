"""Every DuckDB connection the kit opens has a memory limit and a spill folder (issue 13)."""

from __future__ import annotations

import pandas as pd

from fraudkit.data.connection import MEMORY_LIMIT_ENV, TEMP_DIRECTORY_ENV, duckdb_settings
from fraudkit.data.datalayer import connect
from fraudkit.data.dataset import Dataset
from fraudkit.data.sqlsource import open_source


def _settings(raw):
    return raw.execute("SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchone()


def test_every_connection_is_bounded_and_spills(tmp_path, monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "1536MiB")
    monkeypatch.setenv(TEMP_DIRECTORY_ENV, str(tmp_path / "spill"))
    frames = {"accounts": pd.DataFrame({"account_id": [1], "registered_at": pd.to_datetime(["2024-01-01"]),
                                        "register_channel": "app", "phone": None}),
              "interactions": pd.DataFrame({"event_id": [1], "ts": pd.to_datetime(["2024-01-02"]), "account_id": [1],
                                            "device_id": ["d1"], "ip": ["1.2.3.4"], "action": ["like"],
                                            "target_id": [9]})}
    raws = [connect().con, Dataset.from_tables(frames).con.con, open_source(frames).con]
    for raw in raws:
        limit, temp = _settings(raw)
        assert limit in ("1.5 GiB", "1536.0 MiB"), limit
        assert temp == str(tmp_path / "spill")


def test_default_limit_leaves_room_for_the_rest_of_the_run(monkeypatch):
    monkeypatch.delenv(MEMORY_LIMIT_ENV, raising=False)
    monkeypatch.delenv(TEMP_DIRECTORY_ENV, raising=False)
    s = duckdb_settings()
    mb = int(s["memory_limit"].removesuffix("MiB"))
    assert 1024 <= mb <= 3072
    assert s["temp_directory"].endswith("fraudkit-duckdb")


def test_a_query_larger_than_the_limit_spills_and_gives_the_same_rows(tmp_path, monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "64MB")
    monkeypatch.setenv(TEMP_DIRECTORY_ENV, str(tmp_path / "spill"))
    raw = connect().con
    got = raw.execute("SELECT count(DISTINCT i::VARCHAR || 'x'), sum(i) FROM range(3000000) t(i)").fetchone()
    assert got == (3000000, 3000000 * 2999999 // 2)


def test_a_smaller_limit_and_a_release_give_the_limit_back_exactly(monkeypatch):
    """A limit DuckDB shows rounded (3814.6 MiB as '3.7 GiB', which set again is 3.6 GiB) comes back as it was
    after the rule frame's smaller limit and after each release of memory, however many times."""
    from fraudkit.data.connection import duckdb_connection, smaller_memory_limit
    from fraudkit.data.engine import DuckDBEngine

    monkeypatch.setenv(MEMORY_LIMIT_ENV, "3814.6MiB")
    con = duckdb_connection()
    shown = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    engine = DuckDBEngine(con)
    for _ in range(3):
        with smaller_memory_limit(con, 1 / 3):
            inside = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        engine.release_memory()
    assert inside == "1.2 GiB"
    assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == shown == "3.7 GiB"
    con.execute("SET memory_limit = '3.7 GiB'")  # what the shown text alone would have given back
    assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "3.6 GiB"
