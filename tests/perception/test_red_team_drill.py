"""The red-team drill scores each world against the same defences, learned from the training data once."""

import json

import pandas as pd
import pytest
from _report_build import micro_data

from fraudkit.perception.monitors import red_team_drill


@pytest.fixture(scope="module")
def drill(tmp_path_factory):
    root = tmp_path_factory.mktemp("drill")
    (root / "train").symlink_to(micro_data(1000))   # the session's training world (read only), simulated once
    work = root / "work"
    return red_team_drill("evasive", work_dir=work, seed=0, train=root / "train", size="micro",
                          stages=("behaviour", "graph")), work, root / "train"


def _notes(run):
    return json.loads((run / "manifest.json").read_text())["notes"]


def test_the_normal_world_reuses_what_the_attack_world_learned(drill):
    result, work, _ = drill
    assert result.trained and len(result.comparison)
    assert not any("training: reused" in n for n in _notes(work / "attack" / "run"))
    assert any(f"reused from the run {work / 'attack' / 'run'}" in n and "not repeated" in n
               for n in _notes(work / "normal" / "run"))
    a, b = (json.loads((work / w / "run" / "manifest.json").read_text())["operating_point"]
            for w in ("attack", "normal"))
    assert a["thresholds"] == b["thresholds"]


def test_a_drill_reusing_the_main_run_gives_the_same_tables(drill, tmp_path):
    result, work, train = drill
    again = red_team_drill("evasive", work_dir=tmp_path / "again", seed=0, train=train, size="micro",
                           stages=("behaviour", "graph"), reuse=work / "attack" / "run")
    assert any("not repeated" in n for n in _notes(tmp_path / "again" / "attack" / "run"))
    pd.testing.assert_frame_equal(again.comparison, result.comparison)
    pd.testing.assert_frame_equal(again.attack, result.attack)
