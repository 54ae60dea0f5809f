"""Step 5, effect evaluation: the only package that reads labels to measure.

Per-typology recall, look-alike false-positive rates, precision, leakage and interception; rule
backtests; the closed loop (label update and re-scan); the GADBench-style graph benchmark.
"""
