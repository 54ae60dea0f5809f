"""The review queue and the label round trip: sample, verdicts, estimate, label store, next score."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from _report_build import micro_data

from fraudkit.data.contract import FRAUD_TYPOLOGIES
from fraudkit.data.labels import read_labels
from fraudkit.errors import DataValidationError
from fraudkit.evaluation.review import (
    STRATA,
    estimate_from_review,
    read_review,
    record_verdicts,
    review_queue,
    verdicts_from_labels,
    write_review,
)
from fraudkit.pipeline.own_labels import OwnLabels
from fraudkit.pipeline.score import score_dataset


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("review")
    (root / "data").symlink_to(micro_data())        # the session's micro world (read only), simulated once
    run = score_dataset(root / "data", root / "run", stages=("behaviour", "graph"), seed=0)
    return root, run.run_dir


def _truth(root):
    lab = pd.read_parquet(root / "data" / "labels.parquet")
    return set(lab.loc[(lab["entity_type"] == "account") & lab["typology"].isin(FRAUD_TYPOLOGIES), "entity_id"].astype(str))


def test_queue_has_disjoint_strata_with_inclusion_probabilities_and_reasons(world):
    root, run = world
    q = review_queue(run, n=40, seed=0)
    acc = pd.read_parquet(run / "accounts.parquet")
    assert len(q) == 40 and q["account_id"].is_unique and set(q["stratum"]) <= set(STRATA)
    assert q["stratum"].tolist() == sorted(q["stratum"], key=STRATA.index)
    flagged = set(acc.loc[acc["flagged_combined"], "account_id"].astype(str))
    top = q[q["stratum"] == "top_risk"]
    assert set(top["account_id"]) <= flagged and (top["inclusion_probability"] == 1).all()
    rnd = q[q["stratum"] == "random_unflagged"]
    assert len(rnd) and not set(rnd["account_id"]) & flagged
    assert (rnd["inclusion_probability"] == len(rnd) / rnd["stratum_size"]).all()
    assert (q.loc[q["flagged_combined"], "flagged_by"] != "").all()
    # the same run and seed give the same sample; another seed another random part
    assert review_queue(run, n=40, seed=0).equals(q)
    assert not review_queue(run, n=40, seed=1)["account_id"].equals(q["account_id"])


def test_estimate_from_simulated_verdicts_covers_the_true_precision(world):
    root, run = world
    fraud = _truth(root)
    acc = pd.read_parquet(run / "accounts.parquet")
    flagged = acc.loc[acc["flagged_combined"], "account_id"].astype(str)
    true_precision = flagged.isin(fraud).mean()
    true_prevalence = acc["account_id"].astype(str).isin(fraud).mean()
    lab = pd.read_parquet(root / "data" / "labels.parquet")
    # 95 % intervals: over five review samples at least four cover the truth (one sample may miss by chance)
    ests = [estimate_from_review(verdicts_from_labels(review_queue(run, n=60, seed=s), lab)) for s in range(5)]
    assert sum(e.precision_low <= true_precision <= e.precision_high for e in ests) >= 4
    assert sum(e.prevalence_low <= true_prevalence <= e.prevalence_high for e in ests) >= 4
    assert all(e.n_verdicts == 60 and e.n_unsure == 0 for e in ests)


def test_a_census_of_every_account_is_exact():
    q = pd.DataFrame({"stratum": ["top_risk"] * 3 + ["random_unflagged"] * 2, "stratum_size": [3, 3, 3, 2, 2],
                      "flagged_combined": [True] * 3 + [False] * 2,
                      "verdict": ["fraud", "fraud", "honest", "honest", "fraud"]})
    est = estimate_from_review(q)
    assert est.precision == est.precision_low == est.precision_high == pytest.approx(2 / 3)
    assert est.prevalence == pytest.approx(3 / 5)


def test_review_label_score_round_trip_from_the_cli(world, tmp_path):
    root, run = world
    cli = [sys.executable, "-c", "import sys; from fraudkit.cli import main; sys.exit(main())"]
    out = subprocess.run(cli + ["review", str(run), "--n", "30", "--out", str(tmp_path / "q.csv")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    q = pd.read_csv(tmp_path / "q.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    lab = pd.read_parquet(root / "data" / "labels.parquet")
    filled = verdicts_from_labels(q, lab)
    filled.loc[filled.index[-1], "verdict"] = "unsure"
    filled.loc[filled.index[1:], "reviewer"] = ""  # the first row names its reviewer, the rest take --reviewer
    filled.to_csv(tmp_path / "filled.csv", index=False)
    store = tmp_path / "labels.csv"
    out = subprocess.run(cli + ["label", str(run), str(tmp_path / "filled.csv"), "--store", str(store),
                                "--reviewer", "qa"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "29 verdict(s) appended" in out.stdout and "precision of flagged accounts" in out.stdout
    stored = read_labels(store)
    end = json.loads((run / "manifest.json").read_text())["data"]["end"]
    assert len(stored) == 29 and stored["reviewer"].value_counts().to_dict() == {"qa": 28, "simulated": 1} and (stored["time"] == pd.Timestamp(end)).all()
    assert set(stored["source"]) == {f"review:{run.name}"}
    # the next score trains on them (cut after the verdicts: every one is a training label)
    res = score_dataset(root / "data", tmp_path / "next", stages=("behaviour",), seed=0, labels=store)
    manifest = json.loads((res.run_dir / "manifest.json").read_text())
    assert manifest["train"]["kind"] == "own labels" and manifest["train"]["fitted"] is False  # < 30 fraud verdicts
    n_fraud = int((stored["label"] == "fraud").sum())
    assert any(f"{n_fraud} fraud and {29 - n_fraud} honest verdicts" in n for n in manifest["notes"])
    heldout = json.loads((res.run_dir / "own_labels.json").read_text())
    assert heldout["n_heldout_fraud"] == 0 and "no verdict after the cut" in heldout["note"]


def test_own_labels_hold_out_the_later_verdicts(world, tmp_path):
    root, run = world
    fraud = sorted(_truth(root))
    acc = pd.read_parquet(root / "data" / "accounts.parquet")
    end = pd.Timestamp(json.loads((run / "manifest.json").read_text())["data"]["end"])
    cut = end - pd.Timedelta("3D")
    rng = np.random.default_rng(0)
    early = rng.choice(fraud, size=max(2, len(fraud) // 3), replace=False)
    later = [f for f in fraud if f not in set(early)]
    honest = [a for a in acc["account_id"].astype(str) if a not in set(fraud)][:20]
    rows = ([("account", a, "fraud", "ban", cut - pd.Timedelta("1D")) for a in early]
            + [("account", a, "fraud", "ban", cut + pd.Timedelta("1D")) for a in later]
            + [("account", a, "honest", "review", cut + pd.Timedelta("1D")) for a in honest])
    pd.DataFrame(rows, columns=["entity_type", "entity_id", "label", "source", "time"]).to_csv(tmp_path / "l.csv",
                                                                                              index=False)
    own = OwnLabels.of(tmp_path / "l.csv", train_until=cut)
    res = score_dataset(root / "data", tmp_path / "run", stages=("behaviour",), seed=0, labels=own)
    res2 = score_dataset(root / "data", tmp_path / "run2", stages=("behaviour",), seed=0, labels=own)
    h = json.loads((res.run_dir / "own_labels.json").read_text())
    assert h == json.loads((res2.run_dir / "own_labels.json").read_text())  # seeded: the same check twice
    train_entities = set(pd.read_parquet(res.run_dir / "train_entities.parquet")["entity_id"])
    assert train_entities == set(early)
    flagged = pd.read_parquet(res.run_dir / "accounts.parquet")
    flagged = set(flagged.loc[flagged["flagged_combined"], "account_id"].astype(str)) - set(early)
    assert h["n_heldout_fraud"] == len(later) and h["n_heldout_honest"] == len(honest)
    assert h["n_flagged"] == len(flagged) and h["flagged_with_later_fraud"] == len(flagged & set(later))


def test_bad_review_files_are_refused_with_the_fix(world, tmp_path):
    root, run = world
    q = review_queue(run, n=10, seed=0)
    write_review(q.assign(verdict="maybe"), tmp_path / "q.csv")
    with pytest.raises(DataValidationError, match=r"column 'verdict'.*maybe.*Fix: write fraud, honest or unsure"):
        read_review(tmp_path / "q.csv")
    with pytest.raises(Exception, match="inside the run directory"):
        write_review(q, run / "q.csv", run_dir=run)
    with pytest.raises(Exception, match="inside the run directory"):
        record_verdicts(run, tmp_path / "q.csv", run / "labels.csv")
