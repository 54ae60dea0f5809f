import numpy as np
import pandas as pd
import pytest

from fraudkit.data.dataset import Dataset
from fraudkit.identification.rules import load_ruleset
from fraudkit.pipeline.frames import rule_frames

_RULES = {"rules": [{"id": "emulator_like", "entity": "interaction", "condition": "dev_is_emulator",
                     "score": 60, "action": "verify"}],
          "thresholds": {"verify": 50, "block": 100}}


def test_interaction_frame_joins_device_features_when_device_ids_have_nulls(tiny_tables):
    """Integer device ids with nulls come back as floats; the join must still find every device.

    Before the fix the keys were compared as text ('102.0' against '102'), so every ``dev_`` column was
    empty and the default rule set's ``interaction_emulator`` never fired.
    """
    ds = Dataset.from_tables(tiny_tables)
    frame = rule_frames(ds, load_ruleset(_RULES))["interaction"]
    it = tiny_tables["interactions"]
    emulator = tiny_tables["devices"].set_index("device_id")["is_emulator"]
    expected = it["device_id"].map(lambda d: np.nan if pd.isna(d) else float(emulator[d]))
    got = frame.set_index("event_id")["dev_is_emulator"].reindex(it["event_id"]).astype(float)
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy(dtype=float))
    assert got.notna().sum() == it["device_id"].notna().sum() > 0
    hits = load_ruleset(_RULES).evaluate(frame)
    assert int(hits.hits.set_index("rule_id").loc["emulator_like", "hits"]) == int((expected == 1).sum()) > 0


def test_features_joined_chunk_by_chunk_with_the_indexes_kept_are_the_whole_join():
    """The feature tables' key indexes are built once for all the chunks of a frame: each chunk's joined columns
    are those of the whole frame joined at once, keys of every spelling (nulls, float-read integers, misses)."""
    from fraudkit.pipeline.frames import _join_features

    rng = np.random.default_rng(5)
    n = 1000
    accounts = pd.DataFrame({"account_id": np.arange(0, 400, 2), "risk": rng.random(200)})
    devices = pd.DataFrame({"device_id": [f"d{i}" for i in range(50)], "is_emulator": rng.integers(0, 2, 50),
                            "model": [f"m{i % 7}" for i in range(50)]})
    events = pd.DataFrame({"account_id": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 450, n)),
                           "device_id": pd.Series([f"d{i}" if i < 60 else None for i in rng.integers(0, 70, n)],
                                                  dtype=object),
                           "ip": "1.2.3.4"})
    feats = {"account": accounts, "device": devices, "ip": pd.DataFrame({"ip": ["1.2.3.4"], "n": [3.0]})}
    need = {"acct_risk", "dev_is_emulator", "dev_model"}
    whole = _join_features(events.copy(), feats, need)
    indexes = {}
    parts = [_join_features(events.iloc[a:a + 128].reset_index(drop=True), feats, need, indexes=indexes)
             for a in range(0, n, 128)]
    assert sorted(indexes) == ["account", "device"]  # built once, for the tables joined
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)
    assert whole["acct_risk"].notna().sum() == (events["account_id"].notna() & (events["account_id"] % 2 == 0)
                                                & (events["account_id"] < 400)).sum() > 0
    assert whole["dev_model"].notna().sum() == events["device_id"].isin(devices["device_id"]).sum() > 0


def _text_positions(keys, table_keys):
    """The lookup as text only (what ``_positions`` did before integer keys were looked up as integers)."""
    from fraudkit.pipeline.frames import _key_text

    codes, uniq = pd.factorize(keys)
    uniq = pd.Series(uniq, dtype=keys.dtype if keys.dtype != object else object)
    at = pd.Index(_key_text(table_keys)).get_indexer(_key_text(uniq)) if len(uniq) else np.zeros(0, dtype=np.intp)
    return np.where(codes >= 0, at[np.maximum(codes, 0)] if len(at) else -1, -1)


_BIG = 2 ** 62 + 7  # a 19-digit integer


@pytest.mark.parametrize("keys", [
    pd.Series([3, 42, 7, -5, 0, 42, _BIG]),  # integers
    pd.Series([3.0, np.nan, 42.0, 7.0, -5.0, -0.0]),  # an integer column with nulls, read as floats
    pd.Series([3.5, 42.0, np.nan]),  # floats with a fraction: text "42.0"
    pd.Series([3, 42, None], dtype="Int64"),
    pd.Series(["42", "007", "x", None], dtype=object),
    pd.Series(pd.Categorical([42, 3, 42])),
])
@pytest.mark.parametrize("table", [
    pd.Series(["3", "42", "042", " 7", "+7", "-5", "0", "-0", "x", str(_BIG), "99999999999999999999", None],
              dtype=object),
    pd.Series(["3", "42", "-5"], dtype="string"),
    pd.Series([3, 42, 7, -5, 0, _BIG]),
    pd.Series([3.0, 42.0, np.nan, -5.0]),
    pd.Series([3.0, 42.5, 7.0]),  # one fraction: every key's text keeps ".0"
    pd.Series([3, None, 42], dtype="Int64"),
    pd.Series(["3.0", "42"], dtype=object),
])
def test_positions_as_integers_are_the_positions_as_text(keys, table):
    from fraudkit.pipeline.frames import _KeyIndex, _positions

    want = _text_positions(keys, table)
    assert _positions(keys, table).tolist() == want.tolist()
    assert _positions(keys, _KeyIndex(table)).tolist() == want.tolist()


@pytest.mark.parametrize("extra", [None, "file_row_number"])
def test_streamed_interactions_read_in_chunks_are_the_frame_in_memory(tiny_tables, extra):
    """The streamed interactions (parked in a Parquet file, rows numbered by their place in it) read back a few
    rows at a time are the in-memory frame, accumulators included; a column named like DuckDB's row number of a
    file is kept and the rows numbered another way."""
    import fraudkit.pipeline.frames as frames
    from fraudkit.identification.rules import default_ruleset

    tables = dict(tiny_tables)
    it = tables["interactions"]
    # likes 7 minutes apart on two devices in turn: the accumulator counts over an hour differ row by row, and
    # its window (by device) orders the rows unlike the frame (by time)
    devices = it["device_id"].dropna().unique()[:2]
    it = it.assign(device_id=np.resize(devices, len(it)), action="like",
                   ts=pd.Timestamp("2024-06-01") + pd.to_timedelta(np.arange(len(it)) * 7, unit="min"))
    if extra:
        it = it.assign(**{extra: np.arange(len(it))[::-1] * 10})
    tables["interactions"] = it.sample(frac=1.0, random_state=3)  # out of order: the frame sorts them
    ds = Dataset.from_tables(tables)
    rules = default_ruleset()
    whole = rule_frames(ds, rules)["interaction"]
    stream = rule_frames(ds, rules, stream=True)["interaction"]
    assert isinstance(stream, frames.EventFrame) and stream._table is not None  # parked in DuckDB, not in memory
    assert (extra in stream.columns) == (extra is not None)
    assert stream._by_file == (extra is None)  # read from the file by Arrow unless the window numbered them
    got = pd.concat(list(stream.chunks(3)), ignore_index=True)
    pd.testing.assert_frame_equal(got, whole[stream.columns])
    assert got["acc_likes_per_device_1h"].max() > 1
    assert stream._read(4, 7, ["event_id"])["event_id"].tolist() == whole["event_id"].iloc[4:7].tolist()
    stream.close()

