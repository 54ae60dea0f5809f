"""Time ``validate_dataset`` / ``load_dataset`` on a dataset folder.

Usage::

    python benchmarks/validate.py DATA_DIR [--quarantine QDIR]
    python benchmarks/validate.py --scenario demo-small [--seed 0] [--format parquet|csv]
    python benchmarks/validate.py --synthetic 20000000      # interactions rows, no simulator needed

Without DATA_DIR a dataset is simulated into a temporary folder (or, with
``--synthetic N``, a contract-valid dataset with N interactions and N/10
orders is written with DuckDB, fast enough for the 20M-row case). Prints rows
per table, wall time of validation and of a first query, and peak memory.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="?", type=Path, help="dataset folder (default: simulate one)")
    p.add_argument("--scenario", default="demo-small", help="simulator scenario when DATA is not given")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", dest="fmt", choices=["parquet", "csv"], default="parquet")
    p.add_argument("--synthetic", type=int, default=None, metavar="N",
                   help="write a synthetic valid dataset with N interactions instead of simulating")
    p.add_argument("--quarantine", type=Path, default=None, help="quarantine folder")
    args = p.parse_args(argv)

    from fraudkit.data.dataset import load_dataset, validate_dataset

    with tempfile.TemporaryDirectory(prefix="fraudkit-bench-") as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "data"
            t0 = time.perf_counter()
            if args.synthetic:
                _synthetic(data, args.synthetic, args.fmt)
                what = f"synthetic, {args.synthetic:,} interactions"
            else:
                from fraudkit.simulation import simulate

                simulate(args.scenario, data, seed=args.seed, fmt=args.fmt, progress=False)
                what = f"scenario {args.scenario}"
            print(f"generated {what} ({args.fmt}) in {time.perf_counter() - t0:.1f} s")
        size = sum(f.stat().st_size for f in Path(data).rglob("*") if f.is_file())
        t0 = time.perf_counter()
        report = validate_dataset(data, quarantine=args.quarantine)
        t_validate = time.perf_counter() - t0
        t0 = time.perf_counter()
        ds = load_dataset(data, quarantine=args.quarantine) if report.ok else None
        t_load = time.perf_counter() - t0
        t_query = float("nan")
        if ds is not None:
            t0 = time.perf_counter()
            ds.sql("select account_id, count(distinct device_id) as n from interactions group by 1 order by 2 desc "
                   "limit 5")
            t_query = time.perf_counter() - t0
        rows = sum(report.counts.values())
        print(report.describe() if not report.ok else
              "\n".join(f"  {t:<14} {n:>12,}" for t, n in report.counts.items()))
        print(f"rows {rows:,}  files {size / 2**20:,.0f} MiB")
        print(f"validate_dataset {t_validate:.2f} s ({rows / max(t_validate, 1e-9) / 1e6:.1f} M rows/s)  "
              f"load_dataset {t_load:.2f} s  first query {t_query:.2f} s  "
              f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    return 0 if report.ok else 1


def _synthetic(folder: Path, n: int, fmt: str) -> None:
    """A valid dataset written by DuckDB straight to disk: n interactions, n/10 orders, n/20 accounts."""
    import duckdb

    folder.mkdir(parents=True)
    n_acc, n_dev, n_orders = max(n // 20, 10), max(n // 40, 5), max(n // 10, 10)
    con = duckdb.connect()
    opts = "(FORMAT parquet)" if fmt == "parquet" else "(FORMAT csv, HEADER true)"
    ext = fmt
    start = "TIMESTAMP '2024-11-01'"
    queries = {
        "accounts": f"SELECT i AS account_id, {start} - INTERVAL (i % 400) DAY AS registered_at, "
                    f"['app','web','mini_program','third_party'][1 + i % 4] AS register_channel, "
                    f"CASE WHEN i % 7 = 0 THEN NULL ELSE CAST(13000000000 + i AS VARCHAR) END AS phone "
                    f"FROM range({n_acc}) t(i)",
        "devices": f"SELECT i AS device_id, 'SM-G' || (i % 50) AS model, CASE WHEN i % 3 = 0 THEN 'ios' ELSE "
                   f"'android' END AS os, '12' AS os_version, '1080x2400' AS screen, '8.1.0' AS app_version, "
                   f"i % 97 = 0 AS is_emulator, i % 89 = 0 AS is_rooted, md5(CAST(i % ({n_dev} // 2 + 1) AS VARCHAR))"
                   f" AS fingerprint, {start} - INTERVAL (i % 300) DAY AS first_seen FROM range({n_dev}) t(i)",
        "interactions": f"SELECT i AS event_id, {start} + INTERVAL (i % (30 * 86400)) SECOND AS ts, "
                        f"hash(i) % {n_acc} AS account_id, CASE WHEN i % 11 = 0 THEN NULL ELSE hash(i + 1) % {n_dev} "
                        f"END AS device_id, '10.' || (i % 200) || '.' || (i % 13) || '.' || (i % 250) AS ip, "
                        f"['view','like','collect','comment','share','follow'][1 + i % 6] AS action, "
                        f"hash(i + 2) % 100000 AS target_id FROM range({n}) t(i)",
        "merchants": "SELECT i AS merchant_id, 'cat' || (i % 9) AS category FROM range(100) t(i)",
        "products": "SELECT i AS product_id, i % 100 AS merchant_id, 'c' || (i % 30) AS category, "
                    "10.0 + i % 900 AS price, (i % 5) / 10.0 AS discount, i % 13 = 0 AS limited_stock "
                    "FROM range(10000) t(i)",
        "orders": f"SELECT i AS order_id, {start} + INTERVAL (i % (30 * 86400)) SECOND AS ts, hash(i) % {n_acc} "
                  f"AS account_id, hash(i + 1) % {n_dev} AS device_id, '10.1.' || (i % 250) || '.1' AS ip, "
                  f"hash(i + 3) % 10000 AS product_id, 1 + i % 3 AS quantity, 9.9 * (1 + i % 50) AS paid_price, "
                  f"NULL::VARCHAR AS coupon_id, NULL::BIGINT AS promotion_id, 'Road ' || (i % 5000) AS address, "
                  f"CAST(13000000000 + i % 100000 AS VARCHAR) AS receiver_phone, "
                  f"{start} + INTERVAL (i % (30 * 86400) + 86400 * 3) SECOND AS received_at "
                  f"FROM range({n_orders}) t(i)",
    }
    for name, q in queries.items():
        con.execute(f"COPY ({q}) TO '{folder / f'{name}.{ext}'}' {opts}")
    con.close()


if __name__ == "__main__":
    sys.exit(main())
