"""R(A,B) pair generation: the numpy reference, the kit's SQL path and a plain DuckDB self-join; seconds, peak memory.

    .venv/bin/python benchmarks/r_ab.py --data /tmp/fk-bench/medium-2025
    .venv/bin/python benchmarks/r_ab.py --data /tmp/fk-bench/large-2024 --parts sql,join   # leave a side out
    .venv/bin/python benchmarks/r_ab.py --data /tmp/fk-bench/medium-2025 --check          # the two kits agree

Every side sees the same orders (read from the dataset folder's ``orders.parquet`` first, not timed) and finds the
buyer pairs who bought the same product within the co-purchase window (``window_promo`` for an order in a
promotion, ``window_normal`` otherwise), hot items capped (``max_degree``, time-nearest ``k_neighbors``):

``numpy``
    :func:`fraudkit.capability.r_ab.r_ab_edges` (in memory, the reference);
``sql``
    :func:`fraudkit.capability.r_ab.r_ab_edges_sql` on an in-memory DuckDB holding the frames (what the graph
    stage runs on a dataset's engine); both kits add the same-compound / same-phone blocking and every term of
    R(A,B);
``dataset``
    ``r_ab_edges_sql`` of the folder opened as a dataset (Parquet views, as ``fraudkit score`` reads it);
``join``
    a plain DuckDB self-join that caps hot items the same way (row numbers in time) and counts ``k`` only.

Each side runs in its own child process (``--part``) so its peak memory is its own; the ratio to the self-join is
the figure issue 13 asks for (target: at most 1.5). ``--check`` runs both kits in one process and says whether
every column is bit-identical.
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

from fraudkit.capability.r_ab import ORDERS_ORDER, RabParams, in_promotion, r_ab_edges, r_ab_edges_sql  # noqa: E402
from fraudkit.data.connection import duckdb_connection  # noqa: E402
from fraudkit.data.dataset import load_dataset, sort_canonical  # noqa: E402

PARTS = ("join", "sql", "dataset", "numpy")
COLUMNS = ["account_id", "device_id", "product_id", "ts", "address", "receiver_phone", "received_at", "promotion_id"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a simulated dataset folder (parquet)")
    ap.add_argument("--part", choices=PARTS, help="run one side in this process (JSON on stdout)")
    ap.add_argument("--parts", default=",".join(PARTS), help="comma-separated sides to run, each in a child")
    ap.add_argument("--check", action="store_true", help="compare numpy and sql edges, column by column")
    args = ap.parse_args(argv)
    if args.check:
        print(json.dumps(_check(Path(args.data))))
        return
    if args.part:
        print(json.dumps(_run(Path(args.data), args.part)))
        return
    print(f"load average before {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    res = {}
    for part in args.parts.split(","):
        out = subprocess.run([sys.executable, __file__, "--data", args.data, "--part", part], capture_output=True,
                             text=True, check=True)
        res[part] = json.loads(out.stdout.strip().splitlines()[-1])
        r = res[part]
        print(f"{part:8s} {r['seconds']:8.2f} s  cpu {r['cpu_seconds']:7.2f} s  peak RSS {r['peak_gb']:.2f} GB (orders read: {r['base_gb']:.2f})  "
              f"{r['pairs']:,} pairs  load {r['load']}", flush=True)
    print(f"load average after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if "join" in res:
        for part in res:
            if part != "join":
                print(f"{part} / self-join: {res[part]['seconds'] / res['join']['seconds']:.2f}x time, "
                      f"{res[part]['cpu_seconds'] / res['join']['cpu_seconds']:.2f}x cpu time, "
                      f"{res[part]['peak_gb'] / res['join']['peak_gb']:.2f}x peak memory")


def _orders(data: Path):
    orders = pd.read_parquet(data / "orders.parquet", columns=COLUMNS)
    promotions = pd.read_parquet(data / "promotions.parquet") if (data / "promotions.parquet").exists() else None
    return orders, promotions


def _run(data: Path, part: str) -> dict:
    if part == "dataset":
        orders, promotions = None, None
    else:
        orders, promotions = _orders(data)
        if part == "numpy":  # the graph stage's row order, which r_ab_edges_sql reads in
            orders = sort_canonical(orders, "orders")
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu = _cpu()
    t = time.perf_counter()
    if part == "numpy":
        n = len(r_ab_edges(orders, promotions=promotions))
    elif part == "sql":
        n = len(r_ab_edges_sql({"orders": orders, "promotions": promotions}))
    elif part == "dataset":
        tables = ["orders", "promotions"] if (data / "promotions.parquet").exists() else ["orders"]
        n = len(r_ab_edges_sql(load_dataset(data, validate=False, tables=tables)))
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
    cpu = _cpu() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": round(secs, 2), "cpu_seconds": round(cpu, 2), "peak_gb": round(peak / 2**20, 2), "base_gb": round(base / 2**20, 2),
            "pairs": int(n), "load": round(os.getloadavg()[0], 2)}


def _cpu() -> float:
    """User and system seconds of this process, its threads included (DuckDB's): less moved by other jobs'
    load than wall seconds on a shared machine."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _check(data: Path) -> dict:
    orders, promotions = _orders(data)
    want = r_ab_edges(sort_canonical(orders, "orders"), promotions=promotions)
    got = r_ab_edges_sql({"orders": orders, "promotions": promotions})
    same = {c: bool(np.array_equal(want[c].to_numpy(), got[c].to_numpy())) for c in want.columns}
    rel = float(np.max(np.abs(got["r_ab"].to_numpy() / want["r_ab"].to_numpy() - 1))) if len(want) == len(got) else None
    return {"rows": [len(want), len(got)], "bit_identical": same, "max_rel_diff_r_ab": rel,
            "pairs_k_ge_3": int((got["k"] >= 3).sum()), "order": list(ORDERS_ORDER)}


if __name__ == "__main__":
    main()
