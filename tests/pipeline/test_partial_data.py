"""Issue 6 item 4: the pipeline on a platform-contract dataset with only accounts and interactions.

No devices, logins, orders, notes, promotions or lists; ``ip`` and ``device_id`` null; times truncated
to dates. Every stage runs (or says what it skipped), rules whose inputs are missing are switched off
with a note, and the behaviour stage still scores every account.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from fraudkit.cli import main


@pytest.fixture(scope="module")
def partial(tmp_path_factory):
    from fraudkit.simulation import generate

    t = generate("micro", seed=0)
    out = tmp_path_factory.mktemp("data") / "partial"
    out.mkdir()
    acc = t["accounts"].assign(registered_at=t["accounts"]["registered_at"].dt.floor("D"))
    it = t["interactions"].assign(ts=t["interactions"]["ts"].dt.floor("D"),
                                  device_id=pd.Series(pd.NA, index=t["interactions"].index, dtype="string"),
                                  ip=pd.Series(pd.NA, index=t["interactions"].index, dtype="string"))
    acc.to_parquet(out / "accounts.parquet", index=False)
    it.to_parquet(out / "interactions.parquet", index=False)
    return out


@pytest.fixture(scope="module")
def run(partial, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    res = CliRunner().invoke(main, ["score", str(partial), "--out", str(out), "--stages", "behaviour,group,graph"])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_partial_dataset_scores_with_every_stage(run, partial):
    out, output = run
    man = json.loads((out / "manifest.json").read_text())
    assert man["stages_run"] == ["behaviour", "group", "graph"]
    notes = man["notes"]
    # stages say what their missing inputs cost them (manifest notes feed the report pages)
    assert any(n.startswith("behaviour:") and "no devices table" in n for n in notes)
    assert any(n.startswith("group:") and "device_cluster skipped" in n for n in notes)
    assert any(n.startswith("graph:") and "r_ab view skipped" in n for n in notes)
    assert set(man["stage_notes"]) == {"behaviour", "group", "graph"}
    # rules whose signal needs a missing input are off, and said so
    off = [n for n in notes if n.startswith("rules:") and "switched off" in n]
    assert any("no_device_traffic" in n and "interactions.device_id" in n for n in off)
    assert any("action_velocity" in n and "interactions.ts:time_of_day" in n for n in off)
    assert "note: rules: no_device_traffic switched off" in output


def test_partial_dataset_has_behaviour_scores_and_decisions(run, partial):
    out, _ = run
    n_acc = len(pd.read_parquet(partial / "accounts.parquet"))
    s = pd.read_parquet(out / "scores.parquet")
    b = s[(s["stage"] == "behaviour") & (s["entity_type"] == "account") & (s["method"] == "behaviour")]
    assert len(b) == n_acc and b["score"].notna().all() and b["score"].max() > 0
    acc = pd.read_parquet(out / "accounts.parquet")
    assert len(acc) == n_acc and acc["score_behaviour"].notna().all()
    # absent columns no longer look like signals: a null device id everywhere is not 'traffic without a device'
    assert acc["flagged_behaviour"].mean() < 0.1
    dec = pd.read_parquet(out / "decisions.parquet")
    assert (dec["entity_type"] == "interaction").sum() == len(pd.read_parquet(partial / "interactions.parquet"))
    assert not dec["reasons"].str.contains("interaction_no_device").any()
