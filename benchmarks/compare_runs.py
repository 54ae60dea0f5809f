"""Two run folders of ``fraudkit score`` compared file by file: every Parquet file, pandas ``assert_frame_equal``.

    .venv/bin/python benchmarks/compare_runs.py RUN_A RUN_B [--rtol 1e-9]

Feature tables (``features/*`` and ``training/features``: float sums that the engines add in another order)
are compared to a relative ``--rtol``; every other file exactly. Prints one line per file and a summary line,
``<equal> of <n> files equal``; exits 1 when a file differs or is missing on one side.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def compare_runs(a: Path, b: Path, *, rtol: float = 1e-9) -> dict:
    """File -> ``"equal"`` or why not, for every Parquet file under either run folder."""
    files = sorted({p.relative_to(a) for p in a.rglob("*.parquet")} | {p.relative_to(b) for p in b.rglob("*.parquet")})
    out = {}
    for f in files:
        if not (a / f).exists() or not (b / f).exists():
            out[str(f)] = f"only in {a if (a / f).exists() else b}"
            continue
        x, y = pd.read_parquet(a / f), pd.read_parquet(b / f)
        features = str(f).startswith("features/") or str(f) == "training/features.parquet"
        try:
            if features:
                pd.testing.assert_frame_equal(x, y, check_exact=False, rtol=rtol, atol=0, obj=str(f))
            else:
                pd.testing.assert_frame_equal(x, y, check_exact=True, obj=str(f))
            out[str(f)] = "equal" + (f" (rtol {rtol:g})" if features else "")
        except AssertionError as err:
            out[str(f)] = " ".join(str(err).split())[:300]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--rtol", type=float, default=1e-9)
    args = ap.parse_args(argv)
    res = compare_runs(args.a, args.b, rtol=args.rtol)
    for f, what in res.items():
        print(f"{f}: {what}")
    equal = sum(v.startswith("equal") for v in res.values())
    print(f"{equal} of {len(res)} files equal")
    return 0 if equal == len(res) else 1


if __name__ == "__main__":
    sys.exit(main())
