"""Issue 16 item 1: ``fraudkit score`` gives the same scores and flags whatever the order of the rows.

Every table of a platform dataset is written again with its rows shuffled; the run's accounts and scores
tables are identical up to the order of their rows (scores compared exactly, not approximately).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from click.testing import CliRunner

from fraudkit.cli import main
from fraudkit.simulation import generate
from fraudkit.simulation.reviews import generate_reviews


def _write(folder, tables, shuffle_seed=None):
    folder.mkdir()
    rng = None if shuffle_seed is None else np.random.default_rng(shuffle_seed)
    for name, t in tables.items():
        if rng is not None:
            t = t.iloc[rng.permutation(len(t))].reset_index(drop=True)
        t.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def _run(data, out, *extra):
    res = CliRunner().invoke(main, ["score", str(data), "--out", str(out), "--quiet", *map(str, extra)])
    assert res.exit_code == 0, res.output
    acc = pd.read_parquet(out / "accounts.parquet").sort_values("account_id", ignore_index=True)
    sc = pd.read_parquet(out / "scores.parquet")
    sc = sc.sort_values(["stage", "method", "entity_type", "entity_id"], ignore_index=True)
    return acc, sc


def _same(a, b):
    pd.testing.assert_frame_equal(a[0], b[0], check_exact=True)
    pd.testing.assert_frame_equal(a[1], b[1], check_exact=True)


def test_reviews_only_run_does_not_follow_row_order(tmp_path):
    tables = generate_reviews(n_accounts=400, seed=0)
    train = _write(tmp_path / "train", generate_reviews(n_accounts=400, seed=1))
    plain = _write(tmp_path / "plain", tables)
    shuffled = _write(tmp_path / "shuffled", tables, shuffle_seed=5)
    a = _run(plain, tmp_path / "a", "--train", train)
    b = _run(shuffled, tmp_path / "b", "--train", train)
    _same(a, b)
    assert a[0]["flagged_combined"].sum() > 0


def test_simulated_world_run_does_not_follow_row_order(tmp_path):
    tables = generate("micro", seed=0)
    a = _run(_write(tmp_path / "plain", tables), tmp_path / "a")
    b = _run(_write(tmp_path / "shuffled", tables, shuffle_seed=5), tmp_path / "b")
    _same(a, b)
    assert a[0]["flagged_combined"].sum() > 0
