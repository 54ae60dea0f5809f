"""A report on a dataset without labels: volumes, flags, the review sample and estimates, no "not available"."""

from __future__ import annotations

import functools
import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from _report_build import micro_data, micro_report, shared

from fraudkit.data.contract import FRAUD_TYPOLOGIES
from fraudkit.evaluation.review import estimate_share, read_review, review_queue, verdicts_from_labels, write_review
from fraudkit.report.build import STEPS, build_report

pytestmark = pytest.mark.slow(60)  # about 60 s in all here: the file starts early (tests/conftest.py)


@functools.lru_cache(maxsize=None)
def _unlabelled_report():
    return shared("unlabelled-report", _build_unlabelled_report)


def _build_unlabelled_report():
    """The micro world without its labels table, reported with a review filled from the withheld labels.

    The review is drawn from the labelled micro report's run (the same accounts, scored the same way), then its
    verdicts are filled from the labels the unlabelled report never sees: a simulated analyst.
    """
    root = Path(tempfile.mkdtemp(prefix="fk-unlabelled-"))
    data = root / "data"
    shutil.copytree(micro_data(), data)
    labels = pd.read_parquet(data / "labels.parquet")
    (data / "labels.parquet").unlink()
    run = micro_report().run_dir
    queue = verdicts_from_labels(review_queue(run, n=80, seed=0), labels)
    write_review(queue, root / "review.csv")
    res = build_report(data=data, train=micro_data(1000), out=root / "reports", seed=0, as_of="2024-11-11",
                       run_id="unlabelled", loop_windows=2, parameters={"redteam_scenario": ""}, progress=False,
                       review=root / "review.csv", review_n=80)
    return res, labels, run, root


def _visible(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))


def test_no_page_of_a_report_without_labels_says_not_available():
    res, _, _, _ = _unlabelled_report()
    assert res.ok, res.describe()
    skipped = "Not available: the red-team drill. no attack scenario was given"   # this test skips the drill
    for page in ["index.html", *(s.page for s in STEPS)]:
        text = _visible(res.report_dir / page).replace(skipped, "")
        assert "Not available" not in text, (page, text[text.find("Not available") - 200:][:400])
    index = _visible(res.report_dir / "index.html")
    for words in ("What happened", "What to do", "What to watch", "What to review", "precision (estimated from "
                  "your review)", "fraud recall (estimated)", "estimated honest collateral"):
        assert words in index, words


def test_the_estimated_precision_and_prevalence_cover_the_withheld_truth():
    res, labels, run, root = _unlabelled_report()
    fraud = set(labels.loc[(labels["entity_type"] == "account") & labels["typology"].isin(FRAUD_TYPOLOGIES),
                           "entity_id"].astype(str))
    acc = pd.read_parquet(res.run_dir / "accounts.parquet")
    flagged = acc.loc[acc["flagged_combined"].astype(bool), "account_id"].astype(str)
    review = read_review(root / "review.csv")
    est = estimate_share(review, flagged)
    assert est.low <= flagged.isin(fraud).mean() <= est.high
    prevalence = estimate_share(review, acc["account_id"].astype(str))
    assert prevalence.low <= acc["account_id"].astype(str).isin(fraud).mean() <= prevalence.high
    # the page quotes the same estimate
    step5 = _visible(res.report_dir / "05_effect_evaluation.html")
    assert f"{est.share:.1%}" in step5 and f"{est.low:.1%} – {est.high:.1%}" in step5
    # and the report drew its own sample for the next review, the same the CLI would draw
    queue = pd.read_csv(res.run_dir / "report" / "review" / "queue.csv", dtype={"account_id": str},
                        encoding="utf-8-sig")
    assert queue["account_id"].tolist() == review_queue(res.run_dir, n=80, seed=0)["account_id"].tolist()


def test_estimate_share_of_the_flagged_equals_the_review_precision_and_a_census_is_exact():
    q = pd.DataFrame({"account_id": list("abcdefg"),
                      "stratum": ["top_risk"] * 2 + ["random_flagged"] * 2 + ["random_unflagged"] * 3,
                      "stratum_size": [2, 2, 10, 10, 3, 3, 3], "flagged_combined": [True] * 4 + [False] * 3,
                      "verdict": ["fraud", "fraud", "fraud", "honest", "honest", "fraud", "honest"]})
    from fraudkit.evaluation.review import estimate_from_review

    whole = estimate_from_review(q)
    flagged = estimate_share(q, ["a", "b", "c", "d", *[f"x{i}" for i in range(8)]])
    assert flagged.share == pytest.approx(whole.precision)
    assert (flagged.low, flagged.high) == pytest.approx((whole.precision_low, whole.precision_high))
    census = estimate_share(q, ["e", "f", "g"])          # the unflagged stratum was reviewed in full
    assert census.share == census.low == census.high == pytest.approx(1 / 3)
    assert pd.isna(estimate_share(q, ["zz"]).share)       # no reviewed account in the set


def test_a_notebook_scores_on_the_analysts_own_labels_and_draws_a_review(tmp_path):
    """In JupyterLab: labels_path set and no run_dir — the notebook scores on the label store, no training world."""
    from fraudkit.data.labels import append_labels
    from fraudkit.report import notebook as nb

    data = tmp_path / "data"
    shutil.copytree(micro_data(), data)
    labels = pd.read_parquet(data / "labels.parquet")
    (data / "labels.parquet").unlink()
    fraud = labels.loc[(labels["entity_type"] == "account") & labels["typology"].isin(FRAUD_TYPOLOGIES), "entity_id"]
    banned = sorted(fraud.astype(str))[:10]
    append_labels(tmp_path / "labels.csv", pd.DataFrame({"entity_type": "account", "entity_id": banned,
                                                         "label": "fraud", "source": "ban list",
                                                         "time": pd.Timestamp("2024-06-01")}))
    ctx = nb.setup(str(data), labels_path=str(tmp_path / "labels.csv"), cache=tmp_path / "cache")
    manifest = pd.read_json(ctx.run_dir / "manifest.json", typ="series")
    assert manifest["train"]["kind"] == "own labels" and ctx.train_dir is None
    queue = pd.read_csv(ctx.run_dir / nb.QUEUE_FILE, dtype={"account_id": str}, encoding="utf-8-sig")
    assert len(queue) == 200 and queue["verdict"].isna().all()
