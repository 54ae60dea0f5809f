"""Float noise that must not become signal: values equal up to rounding are made equal.

Sums computed in a different order (sparse products, parallel aggregation, PageRank iterations) differ in
their last bits; a tree model splits on any difference, and a hash sees it. Rounding to a fixed number of
significant digits makes such ties exact, so results do not follow row order (issue 16).
"""

from __future__ import annotations

__all__ = ["round_significant"]

import numpy as np


def round_significant(x, digits: int = 9) -> np.ndarray:
    """Round to ``digits`` significant digits (NaN and infinities pass through; ``-0.0`` becomes ``0.0``).

    Parameters
    ----------
    x : array-like of float
    digits : int, default=9

    Returns
    -------
    ndarray of float64, the shape of ``x``

    Examples
    --------
    >>> round_significant([0.30000000000000004, 1e-12 + 2.0, -0.0]).tolist()
    [0.3, 2.0, 0.0]
    >>> bool(round_significant(1/3 * 3e-7) == round_significant(1e-7))
    True
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mag = np.where((x != 0) & np.isfinite(x), np.floor(np.log10(np.abs(x))), 0.0)
        scale = 10.0 ** (digits - 1 - mag)
        out = np.where(np.isfinite(x), np.round(x * scale) / scale, x)
    return out + 0.0
