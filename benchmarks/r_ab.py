"""R(A,B) pair generation beside a plain DuckDB self-join on the same orders: seconds, peak memory, agreement.

    .venv/bin/python benchmarks/r_ab.py --data /tmp/fk-bench/medium-2025
    .venv/bin/python benchmarks/r_ab.py --data /tmp/fk-bench/large-2024 --part sql   # one side per process

Both sides see the same orders (read from the dataset folder's ``orders.parquet`` first, not timed) and find the
buyer pairs who bought the same product within the co-purchase window (``window_promo`` for an order in a
promotion, ``window_normal`` otherwise). The kit's ``r_ab_edges`` also caps hot items (``max_degree``, time-nearest
``k_neighbors``) and adds the same-compound / same-phone blocking and computes every term of R(A,B); the
self-join caps hot items the same way (row numbers in time) and counts ``k`` only. Each side runs in its own child process (``--part kit`` / ``--part sql``) so its peak memory is
its own; the ratio kit / self-join is the figure the issue asks for (target: at most 1.5).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fraudkit.capability.r_ab import RabParams, in_promotion, r_ab_edges  # noqa: E402
from fraudkit.data.connection import duckdb_connection  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a simulated dataset folder (parquet)")
    ap.add_argument("--part", choices=["kit", "sql", "both"], default="both")
    args = ap.parse_args(argv)
    if args.part != "both":
        print(json.dumps(_run(Path(args.data), args.part)))
        return
    print(f"load average before {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    res = {}
    for part in ("sql", "kit"):
        out = subprocess.run([sys.executable, __file__, "--data", args.data, "--part", part], capture_output=True,
                             text=True, check=True)
        res[part] = json.loads(out.stdout.strip().splitlines()[-1])
        r = res[part]
        print(f"{part:4s} {r['seconds']:8.2f} s  peak RSS {r['peak_gb']:.2f} GB  {r['pairs']:,} pairs", flush=True)
    print(f"load average after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"kit / self-join: {res['kit']['seconds'] / res['sql']['seconds']:.2f}x time, "
          f"{res['kit']['peak_gb'] / res['sql']['peak_gb']:.2f}x peak memory")


def _run(data: Path, part: str) -> dict:
    orders = pd.read_parquet(data / "orders.parquet", columns=["account_id", "product_id", "ts", "address",
                                                               "receiver_phone", "received_at", "promotion_id"])
    promotions = pd.read_parquet(data / "promotions.parquet") if (data / "promotions.parquet").exists() else None
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    if part == "kit":
        n = len(r_ab_edges(orders, promotions=promotions))
    else:
        p = RabParams()
        o = orders[["account_id", "product_id", "ts"]].assign(
            win=np.where(in_promotion(orders, promotions), pd.Timedelta(p.window_promo).total_seconds(),
                         pd.Timedelta(p.window_normal).total_seconds()))
        con = duckdb_connection()
        con.register("o", o)
        # hot items capped as the kit caps them: an order pairs with the next k_neighbors orders in time only
        n = con.execute(f"""
            WITH d AS (SELECT product_id, count(DISTINCT account_id) > {p.max_degree} AS hot FROM o GROUP BY ALL),
            r AS (SELECT o.*, d.hot, row_number() OVER (PARTITION BY product_id ORDER BY ts, account_id) AS rn
                  FROM o JOIN d USING (product_id))
            SELECT count(*) FROM (
                SELECT least(a.account_id, b.account_id) AS x, greatest(a.account_id, b.account_id) AS y,
                       count(DISTINCT a.product_id) AS k
                FROM r a JOIN r b ON a.product_id = b.product_id AND b.rn > a.rn
                     AND (NOT a.hot OR b.rn <= a.rn + {p.k_neighbors})
                     AND a.account_id <> b.account_id AND epoch(b.ts - a.ts) <= a.win
                GROUP BY ALL)""").fetchone()[0]
    secs = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": round(secs, 2), "peak_gb": round(peak / 2**20, 2), "base_gb": round(base / 2**20, 2),
            "pairs": int(n)}


if __name__ == "__main__":
    main()
