"""Benchmark the closed loop: per-iteration recall / precision / interception and wall time.

Usage::

    .venv/bin/python benchmarks/loop.py --scenario demo-small --windows 4
    .venv/bin/python benchmarks/loop.py --scenario ecommerce-promo --windows 4 --stages behaviour,graph

Simulates the scenario in memory (seeded), runs :func:`fraudkit.evaluation.loop.run_closed_loop` into a
temporary folder (or ``--out``), prints the per-iteration table (labels are read only to
evaluate), the seconds of each window (``loop/manifest.json``) and the wall time with the machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="demo-small")
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--window", default=None, help="window length (e.g. 3D); overrides --windows")
    ap.add_argument("--stages", default="behaviour,graph")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)

    import pandas as pd

    from fraudkit.evaluation.metrics import format_table
    from fraudkit.evaluation.loop import run_closed_loop
    from fraudkit.simulation import generate, load_scenario

    t0 = time.perf_counter()
    tables = generate(load_scenario(a.scenario), seed=a.seed)
    t_sim = time.perf_counter() - t0
    out = a.out or tempfile.mkdtemp(prefix="fraudkit-loop-")
    load_start = os.getloadavg()[0]
    t1 = time.perf_counter()
    res = run_closed_loop(tables, out, n_windows=a.windows, window=a.window, stages=tuple(a.stages.split(",")),
                          seed=a.seed)
    t_loop = time.perf_counter() - t1
    s = res.summary
    cols = ["iteration", "window_end", "n_fraud_seen", "flagged_pipeline", "flagged_loop", "n_seeds",
            "watched_products", "sunk_addresses", "sunk_devices", "listed", "recall_pipeline", "recall_loop",
            "precision_pipeline", "precision_loop", "fraud_intercepted_prospective", "leakage_rate_pipeline",
            "leakage_rate_loop"]
    view = s[[c for c in cols if c in s.columns]].assign(window_end=lambda f: f["window_end"].dt.strftime("%m-%d %H:%M"))
    print(f"scenario {a.scenario}, seed {a.seed}, {len(s)} windows, stages {a.stages}")
    print(format_table(view))
    ev = res.evaluation
    if len(ev):
        piv = ev.pivot_table(index="typology", columns="iteration", values="recall_loop", sort=False).dropna(how="all")
        print("\nrecall_loop by typology and iteration")
        print(format_table(piv.reset_index()))
    w = res.early_warning
    print(f"\nearly-warning days: {int(w['warning'].sum()) if len(w) else 0} of {len(w)}")
    if len(w) and w["warning"].any():
        print(format_table(w[w["warning"]][["day", "n", "interception_rate", "band_low"]]
                           .assign(day=lambda f: pd.to_datetime(f["day"]).dt.strftime("%Y-%m-%d"))))
    timings = json.loads((Path(out) / "loop" / "manifest.json").read_text())["timings"]
    print("\nseconds per window: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    print(f"simulate {t_sim:.1f}s, loop {t_loop:.1f}s (1-minute load {load_start:.1f} at its start, "
          f"{os.getloadavg()[0]:.1f} at its end, {os.cpu_count()} cores); output in {out}")


if __name__ == "__main__":
    main()
