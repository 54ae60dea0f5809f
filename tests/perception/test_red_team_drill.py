"""The red-team drill scores each world against the same defences, learned from the training data once.

With the main run to reuse, its two worlds are independent and the normal world is scored in a second
process (started by the drill, or earlier by :func:`start_normal_world`): the tables are those of the drill
that scores one world after the other.
"""

import json
from concurrent.futures import Future, ProcessPoolExecutor

import pandas as pd
import pytest
from _report_build import micro_data

from fraudkit.perception.monitors import DrillWorld, red_team_drill, start_normal_world


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
    """Reusing a main run, the normal world is scored in a second process: the same tables, to the last digit."""
    result, work, train = drill
    main = work / "attack" / "run"
    again = red_team_drill("evasive", work_dir=tmp_path / "again", seed=0, train=train, size="micro",
                           stages=("behaviour", "graph"), reuse=main)
    assert any("not repeated" in n for n in _notes(tmp_path / "again" / "attack" / "run"))
    # each world reused the main run (one after the other, the normal world would reuse the attack world's run)
    assert any(f"reused from the run {main} " in n for n in _notes(tmp_path / "again" / "normal" / "run"))
    pd.testing.assert_frame_equal(again.comparison, result.comparison)
    pd.testing.assert_frame_equal(again.attack, result.attack)
    pd.testing.assert_frame_equal(again.normal, result.normal)


def test_a_normal_world_started_early_gives_the_same_tables(drill, tmp_path):
    result, work, train = drill
    main, out = work / "attack" / "run", tmp_path / "early"
    started = start_normal_world(work_dir=out, seed=0, train=train, size="micro", stages=("behaviour", "graph"),
                                 reuse=main)
    assert started.run == out / "normal" / "run"
    early = red_team_drill("evasive", work_dir=out, seed=0, train=train, size="micro", stages=("behaviour", "graph"),
                           reuse=main, normal=started)
    assert any(f"reused from the run {main} " in n for n in _notes(out / "normal" / "run"))
    pd.testing.assert_frame_equal(early.comparison, result.comparison)
    pd.testing.assert_frame_equal(early.normal, result.normal)
    # the worlds are scored now: a second drill in the same folder reads them back, with the world it was given
    assert red_team_drill("evasive", work_dir=out, seed=0, train=train, size="micro", stages=("behaviour", "graph"),
                          reuse=main, normal=started).comparison.equals(early.comparison)


def test_a_normal_world_of_another_drill_is_refused(tmp_path):
    done = Future()
    done.set_result(None)
    other = DrillWorld("normal", tmp_path / "x" / "normal" / "data", tmp_path / "x" / "normal" / "run", done,
                       ProcessPoolExecutor(max_workers=1))
    with pytest.raises(ValueError, match="is not this drill's"):
        red_team_drill("evasive", work_dir=tmp_path / "y", seed=0, size="micro", normal=other)
    with pytest.raises(ValueError, match="empty size"):
        start_normal_world(work_dir=tmp_path, size="")
