"""Transfer: how the kit holds when the scored world is not the one it was trained on, and on its own labels.

Each case scores a world with ``fraudkit score`` and measures it against the world's labels (read only here
and by ``fraudkit evaluate``):

* **simulated training** (``--train``): models and thresholds set on another world (another seed, another
  playbook, the adaptive attackers of ``adaptive``);
* **own labels** (``--labels --train-until``): no simulated world at all; the analyst's labels are a random
  5 % of the fraud accounts whose ban (2 days after their first activity) falls in the first half of the
  data, and the later bans of another 30 % check the run; trained on the first half.

Per case: recall of every typology (combined flag), precision, every look-alike's false-positive rate, the
AUROC of ``score_combined``; and a 200-account review queue (``fraudkit review``) with verdicts filled from
the labels, whose stratified precision estimate and 95 % interval are set beside the true precision. Labelled
accounts an own-labels run trained on are left out of every figure (``train_entities.parquet``).

Usage::

    .venv/bin/python benchmarks/transfer.py [--work /tmp/fraudkit-transfer] [--cases a,b]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fraudkit.data.contract import FRAUD_TYPOLOGIES, HONEST_LOOKALIKES
from fraudkit.evaluation.metrics import evaluate_run
from fraudkit.evaluation.review import estimate_from_review, review_queue, verdicts_from_labels

CASES = {
    # name: (training world or "own", scored world)
    "same": (("demo-small", 1000), ("demo-small", 0)),
    "to-evasive": (("demo-small", 1000), ("evasive", 0)),
    "to-adaptive": (("demo-small", 1000), ("adaptive", 0)),
    "adaptive-to-adaptive": (("adaptive", 1000), ("adaptive", 0)),
    "to-community": (("demo-small", 1000), ("community", 0)),
    "own-labels": ("own", ("demo-small", 0)),
    "own-labels-adaptive": ("own", ("adaptive", 0)),
}


def _fraudkit(*args) -> str:
    cmd = [sys.executable, "-c", "import sys; from fraudkit.cli import main; sys.exit(main())", *map(str, args)]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def _world(work: Path, scenario: str, seed: int) -> Path:
    path = work / f"{scenario}-s{seed}"
    if not (path / "manifest.json").exists():
        _fraudkit("simulate", "--scenario", scenario, "--seed", seed, "--out", path, "--quiet")
    return path


def own_labels(world: Path, out: Path, *, labelled=0.05, later=0.3, seed=0) -> str:
    """Write the analyst's labels for ``world`` (see the module docstring); return the cut (ISO date)."""
    lab = pd.read_parquet(world / "labels.parquet")
    ev = pd.concat([pd.read_parquet(world / f"{t}.parquet", columns=["account_id", "ts"])
                    for t in ("interactions", "orders", "logins") if (world / f"{t}.parquet").exists()])
    first = ev.groupby("account_id")["ts"].min()
    cut = (ev["ts"].min() + (ev["ts"].max() - ev["ts"].min()) / 2).normalize()
    fraud = lab[(lab["entity_type"] == "account") & lab["typology"].isin(FRAUD_TYPOLOGIES)]
    fraud = fraud.drop_duplicates("entity_id").sort_values("entity_id", kind="stable")
    rng = np.random.default_rng(seed)
    rows = []
    for acc in fraud["entity_id"]:
        if acc not in first.index:
            continue
        ban = first[acc] + pd.Timedelta("2D")
        u = rng.random()
        if ban <= cut and u < labelled:
            rows.append(("account", acc, "fraud", "ban", ban))
        elif ban > cut and u < later:
            rows.append(("account", acc, "fraud", "ban", ban))
    pd.DataFrame(rows, columns=["entity_type", "entity_id", "label", "source", "time"]).to_csv(out, index=False)
    return str(cut.date())


def measure(run: Path, world: Path) -> dict:
    table = evaluate_run(run, data=world).set_index("typology")
    acc = pd.read_parquet(run / "accounts.parquet")
    lab = pd.read_parquet(world / "labels.parquet")
    excluded = set()
    if (run / "train_entities.parquet").exists():
        excluded = set(pd.read_parquet(run / "train_entities.parquet")["entity_id"].astype(str))
    acc = acc[~acc["account_id"].astype(str).isin(excluded)]
    fraud = set(lab.loc[(lab["entity_type"] == "account") & lab["typology"].isin(FRAUD_TYPOLOGIES),
                        "entity_id"].astype(str))
    y = acc["account_id"].astype(str).isin(fraud).to_numpy()
    from sklearn.metrics import roc_auc_score

    out = {"recall": table.loc["all_fraud", "recall_combined"],
           "auroc": roc_auc_score(y, acc["score_combined"]) if 0 < y.sum() < len(y) else np.nan}
    for t in FRAUD_TYPOLOGIES:
        if t in table.index and table.loc[t, "n_labelled"] and t != "engagement_buyer":
            out[f"recall {t}"] = table.loc[t, "recall_combined"]
    for t in HONEST_LOOKALIKES:
        if t in table.index and table.loc[t, "n_labelled"]:
            out[f"FPR {t}"] = table.loc[t, "fpr_combined"]
    flagged = acc["flagged_combined"].astype(bool).to_numpy()
    truth = float(y[flagged].mean()) if flagged.any() else np.nan
    est = estimate_from_review(verdicts_from_labels(review_queue(run, n=200, seed=0), lab))
    out.update({"precision": truth, "review estimate": est.precision,
                "review 95% interval": f"{est.precision_low:.3f}-{est.precision_high:.3f}",
                "truth in interval": bool(est.precision_low <= truth <= est.precision_high)})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/fraudkit-transfer"))
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("transfer.md"))
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    rows, secs = {}, {}
    load0 = os.getloadavg()[0]
    for name in args.cases.split(","):
        train, (scenario, seed) = CASES[name]
        world = _world(args.work, scenario, seed)
        run = args.work / f"run-{name}"
        t = time.perf_counter()
        print(f"[transfer] {name}: scoring {world.name}", flush=True)
        if train == "own":
            labels = args.work / f"labels-{name}.csv"
            cut = own_labels(world, labels)
            _fraudkit("score", world, "--out", run, "--labels", labels, "--train-until", cut, "--quiet", "--force")
            how = f"own labels ({labels.name}), trained until {cut}"
        else:
            _fraudkit("score", world, "--out", run, "--train", _world(args.work, *train), "--quiet", "--force")
            how = f"simulated {train[0]} seed {train[1]}"
        secs[name] = time.perf_counter() - t
        rows[name] = {"training": how, "scored world": world.name, **measure(run, world)}
        if (run / "own_labels.json").exists():
            h = json.loads((run / "own_labels.json").read_text())
            rows[name]["held-out later bans caught"] = f"{h['flagged_with_later_fraud']}/{h['n_heldout_fraud']}"
        print(f"[transfer] {name}: {secs[name]:.0f} s", flush=True)
    table = pd.DataFrame(rows).T
    fmt = table.copy()
    for c in fmt.columns:
        fmt[c] = [f"{v:.3f}" if isinstance(v, float) and not np.isnan(v) else ("n/a" if isinstance(v, float) else v)
                  for v in fmt[c]]
    lines = ["# Transfer: scored worlds the kit was not trained on, and the analyst's own labels", "",
             f"Generated by `.venv/bin/python benchmarks/transfer.py` on {platform.machine()}, {os.cpu_count()} "
             f"cores, load {load0:.1f} at the start and {os.getloadavg()[0]:.1f} at the end "
             f"(seconds per case: {', '.join(f'{k} {v:.0f}' for k, v in secs.items())}).", "",
             "Every figure is on labels the method never trained on: the scored world is another seed or "
             "scenario than the training world; own-labels runs leave the accounts they trained on out. "
             "Recall and false-positive rates are of the combined flag; the review columns compare the "
             "stratified estimate from a 200-account review queue (verdicts filled from the labels) with the "
             "true precision.", ""]
    cols = list(fmt.columns)
    lines.append("| case | " + " | ".join(cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for name, r in fmt.iterrows():
        lines.append(f"| {name} | " + " | ".join(str(r[c]) if pd.notna(r[c]) else "" for c in cols) + " |")
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
