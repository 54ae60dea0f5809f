from pathlib import Path

import pytest

from fraudkit.data import contract
from fraudkit.data.contract import LABEL_TABLE, PII_COLUMNS, TABLES, render_markdown, table

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-contract.md"


def test_data_contract_doc_is_in_sync():
    assert DOC.read_text(encoding="utf-8") == render_markdown() + "\n", (
        "docs/data-contract.md is stale: run `python -m fraudkit.data.contract > docs/data-contract.md`")


def test_every_table_is_documented():
    text = render_markdown()
    for t in (*TABLES.values(), LABEL_TABLE):
        assert f"## `{t.name}`" in text
        for c in t.columns:
            assert f"| `{c.name}` |" in text


def test_specs_are_consistent():
    dtypes = {"id", "string", "int", "float", "bool", "timestamp"}
    for t in (*TABLES.values(), LABEL_TABLE):
        names = t.column_names
        assert len(set(names)) == len(names), t.name
        assert set(t.primary_key) <= set(names), t.name
        assert t.time_column is None or t.column(t.time_column).dtype == "timestamp"
        for c in t.columns:
            assert c.dtype in dtypes, (t.name, c.name)
            if c.references:
                parent, col = c.references.split(".")
                assert col in TABLES[parent].column_names
                assert TABLES[parent].primary_key == (col,)
            if c.allowed:
                assert c.dtype == "string"
            if c.min_value is not None or c.max_value is not None:
                assert c.dtype in ("int", "float")
    assert {"phone", "ip", "device_id", "address", "receiver_phone", "fingerprint", "binding_id"} <= set(PII_COLUMNS)


def test_table_lookup():
    assert table("labels") is LABEL_TABLE
    assert table("orders").primary_key == ("order_id",)
    with pytest.raises(KeyError, match="no contract table 'order'"):
        table("order")
    with pytest.raises(KeyError, match="has no column"):
        table("orders").column("price")


def test_tiny_fixture_follows_the_contract(tiny_tables):
    assert set(tiny_tables) == {*contract.TABLES, "labels"}
    for name, df in tiny_tables.items():
        assert tuple(df.columns) == table(name).column_names, name
        assert len(df) > 0
