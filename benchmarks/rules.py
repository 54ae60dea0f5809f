"""Benchmark: the default rule set over N million synthetic account rows and order rows.

    .venv/bin/python benchmarks/rules.py --rows 5000000

Prints data size, wall time, rows/s and peak memory (RSS) per entity.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import psutil

from fraudkit.randomness import check_random_state
from fraudkit.capability.lists import ListStore
from fraudkit.identification.rules import default_ruleset


def synthetic(rs, entity, n, seed):
    """A frame with every column the entity's rules read: floats, plus the typed ones."""
    rng = check_random_state(seed)
    cols = {}
    for c in sorted(rs.columns(entity)):
        if c in ("has_coupon", "limited_stock"):
            cols[c] = rng.random(n) < 0.3
        elif c == "ip":
            cols[c] = pd.Series(rng.integers(0, 50_000, n)).map(lambda i: f"10.{i // 256 % 256}.{i % 256}.1") \
                if n <= 100_000 else np.char.add("10.0.", rng.integers(0, 50_000, n).astype(str))
        elif c == "action":
            cols[c] = np.array(["view", "like", "collect", "comment", "share", "follow"], dtype=object)[
                rng.integers(0, 6, n)]
        elif c == "device_id":
            d = rng.integers(0, 1_000_000, n).astype(float)
            d[rng.random(n) < 0.02] = np.nan
            cols[c] = d
        else:
            x = rng.exponential(3.0, n)
            x[rng.random(n) < 0.05] = np.nan
            cols[c] = x
    if "promotion_id" not in cols and entity == "order":
        cols["promotion_id"] = np.array(["p1", "p2", None], dtype=object)[rng.integers(0, 3, n)]
    return pd.DataFrame(cols)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rs = default_ruleset()
    store = ListStore()
    store.add("blacklist", "proxy_ips", "ip", [f"10.0.{i}" for i in range(0, 50_000, 50)], reason="bench",
              actor="bench", at="2024-01-01")
    proc = psutil.Process()
    for entity in rs.entities:
        frame = synthetic(rs, entity, args.rows, args.seed)
        mb = frame.memory_usage(deep=True).sum() / 1e6
        t = time.perf_counter()
        res = rs.evaluate(frame, lists=store, entity=entity, as_of="2024-06-01")
        wall = time.perf_counter() - t
        print(f"{entity:12s} rows {len(frame):>11,}  rules {len(res.rule_ids):2d}  data {mb:8.1f} MB  "
              f"wall {wall:6.2f} s  {len(frame) / wall:>12,.0f} rows/s  "
              f"flagged {res.rows['flagged'].mean():.3f}  peak RSS {proc.memory_info().rss / 1e9:.2f} GB")
        del frame, res


if __name__ == "__main__":
    main()
