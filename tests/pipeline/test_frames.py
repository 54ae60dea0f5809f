import numpy as np
import pandas as pd

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
