"""Benchmark the group stage: wall time and peak memory per miner, with data sizes.

Usage::

    .venv/bin/python benchmarks/groups.py --scenario demo-small [--seed 0] [--data DIR]

``--data`` reads an existing simulated dataset folder (``fraudkit simulate ... --out DIR``);
otherwise the scenario is generated in memory first. Prints one line per step:
``step, seconds, peak_rss_gb, rows`` and, when the dataset has labels, recall per typology
of the combined ``group`` score and the honest look-alike false-positive rates.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import pandas as pd
import psutil


class _Peak:
    """Sample this process's RSS every 50 ms; ``peak`` in GB."""

    def __init__(self):
        self.proc, self.peak, self._stop = psutil.Process(), 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.05)

    def stop(self):
        self._stop.set()
        self._t.join()
        return self.peak / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="demo-small")
    ap.add_argument("--data", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from fraudkit.data.dataset import Dataset, load_dataset
    from fraudkit.simulation import generate, load_scenario
    from fraudkit.pipeline.context import RunContext
    from fraudkit.pipeline.stages import group

    peak = _Peak()
    t0 = time.perf_counter()
    if args.data:
        ds = load_dataset(args.data, validate=False)  # validated when simulated; validation is not the stage
        labels = ds.labels
    else:
        tables = generate(load_scenario(args.scenario), seed=args.seed)
        labels = tables.pop("labels", None)
        ds = Dataset.from_tables(tables)
    sizes = {n: int(ds.sql(f"select count(*) as n from {n}")["n"].iloc[0]) for n in ds.tables if n != "labels"}
    print(f"data: {args.data or args.scenario} " + " ".join(f"{k}={v:,}" for k, v in sizes.items()))
    print(f"load, {time.perf_counter() - t0:.1f}s")
    t1 = time.perf_counter()
    out = group.run(ds, context=RunContext(seed=args.seed))
    secs = time.perf_counter() - t1
    gb = peak.stop()
    print(f"group stage, {secs:.1f}s, peak_rss={gb:.2f} GB, score rows={len(out.scores):,}, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    with pd.option_context("display.width", 200):
        print(out.artifacts["timings"].to_string(index=False))  # per step: seconds, peak RSS so far (MB)
    for k, v in out.artifacts.items():
        print(f"  artifact {k}: {len(v):,} rows")
    for n in out.notes:
        print(f"  note: {n}")
    if labels is not None:
        g = out.scores[out.scores["method"] == "group"]
        flagged = set(g.loc[g["flagged"], "entity_id"])
        acc = labels[labels["entity_type"] == "account"]
        print(f"flagged accounts: {len(flagged):,}")
        for typ, grp in acc.groupby("typology"):
            ids = set(grp["entity_id"])
            kind = "fpr   " if typ.startswith("honest") else "recall"
            print(f"  {kind} {typ:22s} {len(ids & flagged) / len(ids):.3f}  (n={len(ids)})")
        bad = set(acc.loc[~acc["typology"].str.startswith("honest"), "entity_id"])
        print(f"  precision (flagged & any fraud label) {len(flagged & bad) / max(len(flagged), 1):.3f}")


if __name__ == "__main__":
    main()
