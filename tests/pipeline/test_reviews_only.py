"""Issue 16 item 5: a reviews-only platform dataset (accounts, notes, comments; no devices, IPs or phones).

``score`` and ``score --train`` run on it, each missing input is a note, all-empty features never reach the
models, the spammers carry a custom typology (``fraud:review_spam``) and the combined score ranks them above
chance.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from fraudkit.cli import main
from fraudkit.simulation.reviews import REVIEW_SPAM, generate_reviews


def _write(folder, tables):
    folder.mkdir()
    for name, t in tables.items():
        t.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("reviews")
    return (_write(root / "scored", generate_reviews(n_accounts=400, seed=0)),
            _write(root / "train", generate_reviews(n_accounts=400, seed=1)))


def _score(args):
    res = CliRunner().invoke(main, ["score", *map(str, args), "--quiet"])
    assert res.exit_code == 0, res.output
    return res.output


def _auroc(run, data):
    acc = pd.read_parquet(run / "accounts.parquet")
    spam = set(pd.read_parquet(data / "labels.parquet")["entity_id"].astype(str))
    return roc_auc_score(acc["account_id"].astype(str).isin(spam), acc["score_combined"])


def test_generator_is_reviews_only():
    t = generate_reviews(n_accounts=100, seed=3)
    assert t["accounts"]["phone"].isna().all()
    assert t["interactions"][["device_id", "ip"]].isna().all().all()
    assert set(t["labels"]["typology"]) == {REVIEW_SPAM}
    assert len(t["labels"]) == 15
    assert generate_reviews(n_accounts=100, seed=3)["interactions"].equals(t["interactions"])


def test_score_runs_and_ranks_above_chance(folders, tmp_path):
    scored, _ = folders
    out = _score([scored, "--out", tmp_path / "run"])
    assert "graph: r_ab view skipped" in out and "group: device_cluster skipped" in out
    assert _auroc(tmp_path / "run", scored) > 0.6
    man = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert man["stages_run"] == ["behaviour", "group", "graph"]


def test_score_with_train_runs_and_uses_the_custom_typology(folders, tmp_path):
    scored, train = folders
    out = _score([scored, "--out", tmp_path / "run", "--train", train])
    # the training labels are fraud:review_spam only: they count as positives
    assert "note: behaviour: boosting: trained on 420 accounts (60 positive)" in out
    # features of the missing tables (devices, orders, logins) are empty: dropped before the models, said so
    assert "feature(s) with no value in the training data dropped" in out
    assert _auroc(tmp_path / "run", scored) > 0.9
