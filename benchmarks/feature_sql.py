"""The behaviour stage's feature SQL alone on a cached world: seconds of each statement, and how each scales.

    flock /tmp/fk-heavy.lock .venv/bin/python benchmarks/feature_sql.py --data /tmp/fk-bench/medium-2025 --label L
    flock /tmp/fk-heavy.lock .venv/bin/python benchmarks/feature_sql.py --data /tmp/fk-bench/large-2024 --label L

Loads the world as ``fraudkit score`` does (``load_dataset`` then ``resolve_entities``), then runs
:func:`fraudkit.pipeline.stages.behaviour.build_features` once, timing every statement it sends through
:class:`fraudkit.data.sqlsource.SqlSource` (each materialised table and each query read into pandas). Prints the
world's row counts, the load average before and after, the whole step's seconds, the statements' sum and the
slowest statements. Results are kept by ``<world> <label>`` in ``--results`` (default
``benchmarks/feature_sql.json``) and ``benchmarks/feature_sql.md`` is rewritten from it, with a table of each
statement on two worlds of the same label (``--compare A B``): its seconds on each and their ratio beside the
ratio of the worlds' events, so the statements whose cost grows faster than the data stand out. Statements are
matched by their place in the run and their scratch table's name (the same code sends the same statements in the
same order). Run another checkout's code with ``PYTHONPATH=<checkout>``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/tmp/fk-bench/large-2024")
    ap.add_argument("--label", default="", help="kept with the result, e.g. 'after 7e02d58'")
    ap.add_argument("--top", type=int, default=25, help="how many of the slowest statements to print")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "feature_sql.json"))
    ap.add_argument("--compare", nargs=2, metavar=("SMALLER", "LARGER"),
                    help="keys of two results whose statements are set side by side in the Markdown")
    args = ap.parse_args(argv)
    results_path = Path(args.results)
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    if args.compare is None:
        from fraudkit.errors import FraudkitError

        key = f"{Path(args.data).name} {args.label}".strip()
        try:
            results[key] = _measure(args.data, args.top)
        except FraudkitError as e:  # a wrong folder or table: the kit's message, not a traceback
            raise SystemExit(f"feature_sql: {e}") from None
        results_path.write_text(json.dumps(results, indent=1) + "\n")
    unknown = [k for k in args.compare or () if k not in results]
    if unknown:
        raise SystemExit(f"feature_sql: no result {unknown[0]!r} in {results_path}; kept: {', '.join(results)}")
    results_path.with_suffix(".md").write_text(_markdown(results, args.compare))


def _measure(data: str, top: int) -> dict:
    from fraudkit.data import sqlsource
    from fraudkit.data.contract import EVENT_TABLES
    from fraudkit.data.dataset import load_dataset
    from fraudkit.pipeline.resolution import resolve_entities
    from fraudkit.pipeline.stages.behaviour import build_features

    statements = []
    real_table, real_df = sqlsource.SqlSource.temp_table, sqlsource.SqlSource.df

    def timed(kind, run):
        def wrapper(self, *a):
            t = time.perf_counter()
            try:
                return run(self, *a)
            finally:
                sql = a[-1]
                statements.append({"n": len(statements), "what": kind if kind == "query" else f"table {a[0]}",
                                   "seconds": round(time.perf_counter() - t, 3),
                                   "sql": re.sub(r"\s+", " ", sql).strip()[:160]})
        return wrapper

    sqlsource.SqlSource.temp_table = timed("table", real_table)
    sqlsource.SqlSource.df = timed("query", real_df)
    try:
        res = {"data": data, "load_before": _load(), "cpus": os.cpu_count(),
               "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        ds = resolve_entities(load_dataset(data))
        res["rows"] = {t: ds.count(t) for t in ("accounts", *EVENT_TABLES) if ds.has(t)}
        res["events"] = sum(n for t, n in res["rows"].items() if t in EVENT_TABLES)
        print(f"[feature_sql] {data}: {', '.join(f'{t} {n:,}' for t, n in res['rows'].items())}; "
              f"load {res['load_before']}", flush=True)
        statements.clear()  # entity resolution's own statements are not the feature SQL's
        t = time.perf_counter()
        build_features(ds)
        res["seconds"] = round(time.perf_counter() - t, 1)
    finally:
        sqlsource.SqlSource.temp_table, sqlsource.SqlSource.df = real_table, real_df
    res["statement_seconds"] = round(sum(s["seconds"] for s in statements), 1)
    res["load_after"] = _load()
    res["statements"] = statements
    print(f"[feature_sql] build_features {res['seconds']} s, {len(statements)} statements "
          f"{res['statement_seconds']} s; load after {res['load_after']}")
    for s in sorted(statements, key=lambda s: -s["seconds"])[:top]:
        print(f"{s['seconds']:8.2f}  #{s['n']:<3d} {s['what']:<22s} {s['sql'][:110]}")
    return res


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _markdown(results: dict, compare) -> str:
    out = ["# The behaviour feature SQL, statement by statement", "",
           "Written by `benchmarks/feature_sql.py` (do not edit by hand): `build_features` alone on a cached world,",
           "each statement it sends timed (materialised tables and queries read into pandas). Machine: 2 cores,",
           "24 GB, shared (load = 1, 5, 15 min).", "",
           "| run | events | build_features s | statements s | statements | load before | load after | when |",
           "|---|---:|---:|---:|---:|---|---|---|"]
    for k, r in results.items():
        out.append(f"| {k} | {r['events']:,} | {r['seconds']} | {r['statement_seconds']} | {len(r['statements'])} "
                   f"| {r['load_before']} | {r['load_after']} | {r['when']} |")
    if compare:
        a, b = (results[k] for k in compare)
        scale = b["events"] / a["events"]
        same = {(s["n"], s["what"]): s for s in a["statements"]}
        rows = []
        for s in b["statements"]:
            t = same.get((s["n"], s["what"]))
            if t is not None:
                rows.append((s["seconds"] - t["seconds"] * scale, s, t))
        out += ["", f"## {compare[1]} against {compare[0]}", "",
                f"Events {b['events'] / 1e6:.2f}M against {a['events'] / 1e6:.2f}M: {scale:.1f}x. "
                f"build_features {b['seconds']} s against {a['seconds']} s ({b['seconds'] / a['seconds']:.1f}x). "
                "Statements by the seconds they take beyond their cost on the smaller world times the events' "
                "ratio (positive: grows faster than the data):", "",
                "| # | statement | s | s, smaller | ratio | beyond linear s | SQL |", "|---:|---|---:|---:|---:|---:|---|"]
        for extra, s, t in sorted(rows, key=lambda x: -x[0])[:25]:
            ratio = s["seconds"] / t["seconds"] if t["seconds"] else float("inf")
            sql = s["sql"][:90].replace("|", "\\|")
            out.append(f"| {s['n']} | {s['what']} | {s['seconds']:.2f} | {t['seconds']:.2f} | {ratio:.1f} "
                       f"| {extra:+.1f} | `{sql}` |")
        out.append(f"\nSum beyond linear over every matched statement: "
                   f"{sum(x[0] for x in rows):+.1f} s ({len(rows)} of {len(b['statements'])} statements matched).")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
