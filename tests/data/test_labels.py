"""The label store: the analyst's verdicts read strictly, appended without loss, taken as of a time."""

import pandas as pd
import pytest

from fraudkit.data.labels import append_labels, labels_as_of, read_labels, to_contract_labels
from fraudkit.errors import DataValidationError


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_typologies_and_verdicts_are_read_as_fraud_or_honest(tmp_path):
    p = _write(tmp_path / "l.csv", "entity_type,entity_id,label,source,time\n"
                                   "account,17,coupon_abuser,ban,2026-11-02\n"
                                   "Account,18,FRAUD,blacklist,2026-11-03 10:00\n"
                                   "account,19,honest_shared_device,review,2026-11-04\n"
                                   "account,20,honest,appeal,2026-11-05\n")
    lab = read_labels(p)
    assert lab["label"].tolist() == ["fraud", "fraud", "honest", "honest"]
    assert lab["typology"].tolist()[0] == "coupon_abuser" and lab["entity_type"].unique().tolist() == ["account"]
    contract = to_contract_labels(lab, pd.Series([17, 18, 19, 20, 21]))
    # ids take the data's type; a plain honest verdict is not a row (unlabelled means honest there)
    assert contract[["entity_id", "typology"]].values.tolist() == [
        [17, "coupon_abuser"], [18, "reported_fraud"], [19, "honest_shared_device"]]


@pytest.mark.parametrize("text, column, fix", [
    ("entity_type,entity_id,label,source,time\naccount,1,-1,ban,2026-01-01\n", "label", "fraud or honest"),
    ("entity_type,entity_id,label,source,time\naccount,1,1,ban,2026-01-01\n", "label", "numeric codes"),
    ("entity_type,entity_id,label,source,time\nuser,1,fraud,ban,2026-01-01\n", "entity_type", "entity types"),
    ("entity_type,entity_id,label,source,time\naccount,1,fraud,ban,last week\n", "time", "2026-11-02"),
    ("entity_type,entity_id,label,source,time\naccount,,fraud,ban,2026-01-01\n", "entity_id", "fill it"),
    ("entity_type,entity_id,label,time\naccount,1,fraud,2026-01-01\n", "source", "add them"),
])
def test_bad_label_files_name_the_file_column_example_and_fix(tmp_path, text, column, fix):
    p = _write(tmp_path / "bad.csv", text)
    with pytest.raises(DataValidationError) as e:
        read_labels(p)
    msg = str(e.value)
    assert "bad.csv" in msg and f"column {column!r}" in msg and fix in msg and "Fix:" in msg


def test_append_keeps_every_verdict_once_and_the_latest_wins(tmp_path):
    store = tmp_path / "store.csv"
    first = pd.DataFrame({"entity_type": "account", "entity_id": ["1", "2"], "label": ["fraud", "fraud"],
                          "source": "ban", "time": pd.to_datetime(["2026-01-01", "2026-01-02"])})
    append_labels(store, first)
    append_labels(store, first)  # the same verdicts again: not doubled
    appeal = pd.DataFrame({"entity_type": ["account"], "entity_id": ["1"], "label": ["honest"],
                           "source": ["appeal"], "time": pd.to_datetime(["2026-02-01"]), "reviewer": ["li"]})
    both = append_labels(store, appeal)
    assert len(both) == 3 and len(read_labels(store)) == 3
    now = labels_as_of(read_labels(store))
    assert now[["entity_id", "label"]].values.tolist() == [["1", "honest"], ["2", "fraud"]]
    then = labels_as_of(read_labels(store), "2026-01-15")
    assert then[["entity_id", "label"]].values.tolist() == [["1", "fraud"], ["2", "fraud"]]
