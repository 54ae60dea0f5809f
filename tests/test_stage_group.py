import numpy as np
import pandas as pd
import pytest

from fraudkit.base import SCORE_COLUMNS
from fraudkit.io import Dataset
from fraudkit.simulation import generate, load_scenario
from fraudkit.stages.group import METHODS, run


@pytest.fixture(scope="module")
def micro():
    t = generate(load_scenario("micro"), seed=0)
    labels = t.pop("labels")
    return t, labels


def test_run_scores_every_account_and_catches_farms(micro):
    tables, labels = micro
    out = run(Dataset.from_tables(tables), seed=0)
    s = out.scores
    assert list(s.columns) == list(SCORE_COLUMNS) and out.stage == "group"
    assert set(s["method"]) == set(METHODS)
    n = len(tables["accounts"])
    assert (s.groupby("method").size() == n).all()
    assert s["score"].between(0, 1).all()
    g = s[s["method"] == "group"].set_index("entity_id")
    assert (g["score"] >= s[s["method"] != "group"].groupby("entity_id")["score"].max().reindex(g.index)).all()
    acc = labels[labels.entity_type == "account"]
    farm = set(acc.loc[acc.typology == "device_farm", "entity_id"])
    flagged = set(g.index[g["flagged"]])
    assert len(farm & flagged) / len(farm) >= 0.9
    honest = set(acc.loc[acc.typology.str.startswith("honest"), "entity_id"])
    assert len(honest & flagged) / len(honest) <= 0.05
    assert {"device_clusters", "coaction_groups", "dense_blocks", "association_groups", "candidates"} \
        <= set(out.artifacts)
    c = out.artifacts["candidates"]
    assert list(c.columns) == ["account_id", "group_id", "kind", "score", "reason"] and (c["score"] >= 0.7).all()
    again = run(Dataset.from_tables(tables), seed=0)
    pd.testing.assert_frame_equal(out.scores, again.scores)


def test_missing_tables_give_notes(micro):
    tables, _ = micro
    slim = {k: tables[k] for k in ("accounts", "interactions")}
    out = run(Dataset.from_tables(slim), seed=0)
    assert any("no devices table" in n for n in out.notes)
    assert any("no orders table" in n for n in out.notes)
    assert "device_cluster" not in set(out.scores["method"])
    assert "device_clusters" not in out.artifacts
