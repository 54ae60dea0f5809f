"""Stage-1 benchmark: features + rules + model scoring on a scenario; optional per-typology recall.

Usage (from the repository root)::

    .venv/bin/python benchmarks/stage1.py --scenario demo-small                 # simulate in memory
    .venv/bin/python benchmarks/stage1.py --scenario demo-small --evaluate      # + recall table
    .venv/bin/python benchmarks/stage1.py --data DATA_DIR --train TRAIN_DIR     # datasets on disk

Models are trained on a *different* simulated seed (``--train-seed``) or dataset
(``--train``); the scored dataset's labels are read only by ``--evaluate``.
Prints wall time per step, peak resident memory and the data size.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fraudkit.identification.models import labels_for  # noqa: E402
from fraudkit.pipeline.context import RunContext  # noqa: E402
from fraudkit.pipeline.stages import behaviour as stage  # noqa: E402


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _load(scenario, seed, data):
    if data is not None:
        from fraudkit.data.dataset import load_dataset

        ds = load_dataset(data, validate=False)
        return ds, ds.labels
    from fraudkit.simulation import generate, load_scenario

    tables = generate(load_scenario(scenario), seed=seed)
    return tables, tables.pop("labels", None)


_KEYS = {"account_id", "author_id", "device_id", "target_id", "note_id", "order_id", "event_id", "login_id",
         "claim_id", "coupon_id", "address", "phone", "receiver_phone", "fingerprint", "entry_id", "entity_id",
         "binding_id"}
_PER_COPY = ("accounts", "bindings", "devices", "logins", "notes", "interactions", "orders", "coupon_claims",
             "list_entries")


def _replicate(tables: dict, k: int) -> dict:
    """``k`` disjoint copies of a simulated platform (keys and IPs made distinct) to measure scaling."""
    if k <= 1:
        return tables
    out = dict(tables)
    for name in _PER_COPY:
        if name not in tables:
            continue
        parts = []
        for c in range(k):
            df = tables[name].copy()
            for col in df.columns:
                if col in _KEYS and c:
                    if df[col].dtype.kind in "iu":
                        df[col] = df[col] + c * 10**10
                    else:
                        df[col] = df[col].where(df[col].isna(), df[col].astype(str) + f"~{c}")
                elif col == "ip" and c:
                    parts2 = df[col].str.split(".", n=1, expand=True)
                    shifted = ((parts2[0].astype(float) + c) % 256).astype("Int64").astype(str) + "." + parts2[1]
                    df[col] = shifted.where(df[col].notna(), None)
            parts.append(df)
        out[name] = pd.concat(parts, ignore_index=True)
    return out


def _size(ds) -> dict:
    names = ("accounts", "interactions", "orders", "devices", "logins")
    if isinstance(ds, dict):
        return {n: len(ds[n]) for n in names if n in ds}
    return {n: ds.count(n) for n in names if ds.has(n)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="demo-small")
    ap.add_argument("--seed", type=int, default=0, help="seed of the scored dataset")
    ap.add_argument("--train-seed", type=int, default=1, help="seed of the training dataset")
    ap.add_argument("--data", type=Path, default=None, help="scored dataset folder (instead of simulating)")
    ap.add_argument("--train", type=Path, default=None, help="training dataset folder (with labels)")
    ap.add_argument("--precision", type=float, default=0.9, help="target precision on validation")
    ap.add_argument("--no-models", action="store_true", help="features and rules only")
    ap.add_argument("--replicate", type=int, default=1,
                    help="score K disjoint copies of the simulated platform (scaling runs without a big scenario)")
    ap.add_argument("--evaluate", action="store_true", help="print per-typology recall (reads test labels)")
    args = ap.parse_args(argv)

    t = time.perf_counter()
    ds, test_labels = _load(args.scenario, args.seed, args.data)
    if args.replicate > 1 and isinstance(ds, dict):
        ds = _replicate(ds, args.replicate)
        test_labels = None if test_labels is None else _replicate({"labels": test_labels}, 1)["labels"]
        args.evaluate = False  # labels are not replicated
    print(f"data: {args.data or args.scenario} seed={args.seed} {_size(ds)}  load {time.perf_counter() - t:.1f}s")

    notes: list = []
    ctx = RunContext(target_precision=args.precision)
    t = time.perf_counter()
    feats = stage.build_features(ds, notes=notes)
    t_feat = time.perf_counter() - t
    print(f"features: {t_feat:.1f}s  rows " + ", ".join(f"{k}={len(v)}" for k, v in feats.items()
                                                         if isinstance(v, pd.DataFrame) and not k.startswith("_"))
          + f"  peak {_peak_gb():.2f} GB")

    t = time.perf_counter()
    # the rule frames (interactions with their joined features and accumulators) and the one evaluation
    evaluation = stage._evaluate_rules(ds, feats, ctx, notes)
    rules_out = None if evaluation is None else stage._rule_scores(evaluation, feats["account"],
                                                                  stage._ruleset(ctx))
    t_rules = time.perf_counter() - t
    methods = {"rules": rules_out[0]} if rules_out else {}
    print(f"rules: {t_rules:.1f}s  flagged {int(methods['rules'][2].sum()) if methods else 0}")

    t_train = t_score = 0.0
    if not args.no_models:
        t = time.perf_counter()
        train, train_labels = _load(args.scenario, args.train_seed, args.train)
        if isinstance(train, dict):
            train["labels"] = train_labels
        X_tr, y_tr = stage.training_data(train)
        t_train = time.perf_counter() - t
        print(f"training features ({args.train or f'seed {args.train_seed}'}): {t_train:.1f}s "
              f"{len(y_tr)} accounts, {int(y_tr.sum())} positive")
        t = time.perf_counter()
        art: dict = {}
        models = stage.fit_models(X_tr, y_tr, context=ctx)
        methods.update(stage._run_models(models, feats["account"], context=ctx, notes=notes, artifacts=art))
        t_score = time.perf_counter() - t
        print(f"models fit + score + reasons: {t_score:.1f}s")
    if methods:
        combo = dict(methods)
        if "rules" in combo and len(combo) > 1:
            sc, _, _, why = combo["rules"]
            combo["rules"] = (sc, rules_out[2], sc >= rules_out[2], why)
        comb, flag, _ = stage.combine_scores(combo)
        methods["behaviour"] = (comb, 0.5, flag, None)
    total = t_feat + t_rules + t_score
    print(f"TOTAL features+rules+scoring: {total:.1f}s (training features {t_train:.1f}s extra)  "
          f"peak RSS {_peak_gb():.2f} GB")
    for n in notes:
        print("  note:", n)

    if args.evaluate and test_labels is not None:
        ids = feats["account"].account_id
        y, typ = labels_for(ids, test_labels)
        table = pd.DataFrame({"typology": typ})
        for m, v in methods.items():
            table[m] = np.asarray(v[2], bool)
        out = table.groupby("typology").agg(n=("typology", "size"), **{f"recall_{m}": (m, "mean") for m in methods})
        print("\nper-typology share flagged (recall for attackers, false-positive rate for honest look-alikes):")
        print(out.round(3).to_string())
        for m in methods:
            f = table[m].to_numpy()
            print(f"{m:>10}: flagged {f.sum():5d}  precision {y[f].mean() if f.any() else float('nan'):.3f}  "
                  f"recall {f[y == 1].mean():.3f}")


if __name__ == "__main__":
    main()
