"""The one place where seeds become random generators."""

from __future__ import annotations

import numpy as np

__all__ = ["check_random_state", "spawn"]


def check_random_state(seed) -> np.random.Generator:
    """Turn ``seed`` into a :class:`numpy.random.Generator`.

    Parameters
    ----------
    seed : None, int, numpy.random.Generator
        ``None`` means seed 0, never the clock: fraudkit is reproducible by
        default. A Generator is returned as it is.

    Examples
    --------
    >>> check_random_state(7).integers(100) == check_random_state(7).integers(100)
    True
    """
    if seed is None:
        return np.random.default_rng(0)
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (int, np.integer)):
        return np.random.default_rng(int(seed))
    raise TypeError(f"seed must be None, an int or a numpy Generator, got {type(seed).__name__}")


def spawn(seed, n: int) -> list[np.random.Generator]:
    """Return ``n`` independent generators derived from ``seed``."""
    base = np.random.SeedSequence(0 if seed is None else int(seed))
    return [np.random.default_rng(s) for s in base.spawn(n)]
