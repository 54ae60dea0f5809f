"""The behaviour models scoring the accounts: what the step "behaviour models: score the accounts" does.

Fits the behaviour stage's models on a training world as ``fraudkit score --train`` does, reads the account
feature table of a run (``RUN/features/account.parquet``, as the behaviour stage hands it on), and times, twice
each: the feature matrix, each model's scores (``decision_function``), the boosting model's reasons for the
20,000 highest scores, and the whole step (:func:`fraudkit.pipeline.stages.behaviour._run_models`). Prints a
fingerprint of the scores, so runs of two versions of the code can be checked equal.

Usage (the code measured is the one this file sits in)::

    flock /tmp/fk-heavy.lock .venv/bin/python benchmarks/behaviour_scoring.py \\
        /tmp/fk-bench/run-large-after-2105fd8/features/account.parquet --train /tmp/fk-bench/demo-small-1000 \\
        --label "after 2105fd8" --out benchmarks/behaviour_scoring.md

Appends one line per run to ``--out`` (a Markdown table, written with its header when new).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fraudkit.data.dataset import load_dataset  # noqa: E402
from fraudkit.identification.models import _matrix  # noqa: E402
from fraudkit.pipeline.context import RunContext  # noqa: E402
from fraudkit.pipeline.stages import behaviour  # noqa: E402

HEADER = ["# The behaviour models scoring the accounts", "",
          "Printed by `benchmarks/behaviour_scoring.py` (seconds, two runs each; 2 cores, 24 GB). The scores' "
          "fingerprint is a hash of every model's scores, thresholds and reasons: equal fingerprints, equal results.",
          "", "| code | when | accounts x features | load before | matrix | logistic scores | boosting scores | "
          "boosting reasons (20,000) | whole step | fingerprint |", "|---|---|---|---|---|---|---|---|---|---|"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("features", help="an account feature table (RUN/features/account.parquet)")
    ap.add_argument("--train", required=True, help="the training world (a dataset folder)")
    ap.add_argument("--label", default=None, help="what code this is (default: its git commit)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "behaviour_scoring.md"))
    args = ap.parse_args()
    label = args.label or subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                         capture_output=True, text=True).stdout.strip()
    load_before = os.getloadavg()
    ctx = RunContext(train=load_dataset(args.train))
    X, y = behaviour.training_data(ctx.train)
    models = behaviour.fit_models(X, y, context=ctx)
    acc = pd.read_parquet(args.features)
    names = next(iter(models.values())).feature_names_in_
    print(f"[behaviour_scoring] {label}: {len(acc):,} accounts, {len(names)} features; load "
          f"{' '.join(f'{x:.2f}' for x in load_before)}", flush=True)
    times = {k: [] for k in ("matrix", "logistic", "boosting", "reasons", "whole")}
    digest = hashlib.sha256()
    for rep in range(2):
        t = time.perf_counter()
        _matrix(acc, names)
        times["matrix"].append(time.perf_counter() - t)
        scores = {}
        for name in ("logistic", "boosting"):
            t = time.perf_counter()
            scores[name] = models[name].decision_function(acc)
            times[name].append(time.perf_counter() - t)
        top = np.argsort(-scores["boosting"], kind="stable")[:20000]
        t = time.perf_counter()
        models["boosting"].reasons(acc.iloc[top], top=3)
        times["reasons"].append(time.perf_counter() - t)
        t = time.perf_counter()
        out = behaviour._run_models(models, acc, context=ctx, notes=[], artifacts={})
        times["whole"].append(time.perf_counter() - t)
        if rep == 0:
            for name, (s, thr, flagged, reasons) in sorted(out.items()):
                digest.update(np.ascontiguousarray(s, dtype=np.float64).tobytes())
                digest.update(repr(float(thr)).encode())
                digest.update("\x1f".join(map(str, reasons)).encode())
        print(f"[behaviour_scoring] run {rep + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
              flush=True)
    fingerprint = digest.hexdigest()[:16]
    print(f"[behaviour_scoring] scores fingerprint {fingerprint}")
    line = (f"| {label} | {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | {len(acc):,} x {len(names)} | "
            f"{' '.join(f'{x:.2f}' for x in load_before)} | "
            + " | ".join(", ".join(f"{x:.2f}" for x in times[k]) for k in times) + f" | `{fingerprint}` |")
    path = Path(args.out)
    text = path.read_text(encoding="utf-8") if path.exists() else "\n".join(HEADER) + "\n"
    path.write_text(text + line + "\n", encoding="utf-8")
    print(f"[behaviour_scoring] wrote {path}")


if __name__ == "__main__":
    main()
