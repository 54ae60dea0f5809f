"""The one place where seeds become random generators.

Every random choice in fraudkit takes ``seed`` and turns it into a generator
here: :func:`check_random_state` for one stream, :func:`spawn` for independent
streams, :func:`python_random` for libraries that want a :class:`random.Random`
(igraph), :func:`igraph_seeded` around igraph's random choices. ``None`` means
seed 0, never the clock: fraudkit is reproducible by default.
"""

from __future__ import annotations

import random
import threading
from contextlib import contextmanager

import numpy as np

__all__ = ["check_random_state", "spawn", "python_random", "igraph_seeded"]

_IGRAPH_RNG = threading.RLock()
"""Held by the caller whose seeded generator igraph draws from (:func:`igraph_seeded`)."""


def check_random_state(seed) -> np.random.Generator:
    """Turn ``seed`` into a :class:`numpy.random.Generator`.

    Parameters
    ----------
    seed : None, int, sequence of int, numpy.random.SeedSequence or numpy.random.Generator
        ``None`` means seed 0. An int, a sequence of ints or a SeedSequence
        seeds a new PCG64 generator exactly as :func:`numpy.random.default_rng`
        does (the same numbers). A Generator is returned as it is.

    Returns
    -------
    numpy.random.Generator

    Raises
    ------
    TypeError
        ``seed`` is none of the above (e.g. a float or a legacy ``RandomState``).

    Examples
    --------
    >>> int(check_random_state(7).integers(100)) == int(check_random_state(7).integers(100))
    True
    >>> int(check_random_state([3, 7]).integers(1000)) == int(np.random.default_rng([3, 7]).integers(1000))
    True
    """
    if seed is None:
        return np.random.default_rng(0)
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError("seed must be None, an int, a sequence of ints, a SeedSequence or a numpy Generator, "
                        "got bool")
    if isinstance(seed, (int, np.integer)):
        return np.random.default_rng(int(seed))
    if isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    if isinstance(seed, (list, tuple, np.ndarray)) and all(isinstance(s, (int, np.integer)) for s in seed):
        return np.random.default_rng([int(s) for s in seed])
    raise TypeError(f"seed must be None, an int, a sequence of ints, a SeedSequence or a numpy Generator, "
                    f"got {type(seed).__name__}; pass an int such as seed=0")


def spawn(seed, n: int) -> list[np.random.Generator]:
    """Return ``n`` independent generators derived from ``seed``.

    Parameters
    ----------
    seed : None, int or numpy.random.SeedSequence
        The parent. A SeedSequence is not changed: its children are the ones
        ``seed.spawn(n)`` would give, without advancing ``seed``.
    n : int
        How many streams.

    Examples
    --------
    >>> a, b = spawn(3, 2)
    >>> int(a.integers(10**6)) != int(b.integers(10**6))
    True
    >>> ss = np.random.SeedSequence(5)
    >>> int(spawn(ss, 1)[0].integers(10**6)) == int(np.random.default_rng(np.random.SeedSequence(5).spawn(1)[0]).integers(10**6))
    True
    >>> ss.n_children_spawned
    0
    """
    if isinstance(seed, np.random.SeedSequence):
        base = np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key, pool_size=seed.pool_size,
                                      n_children_spawned=seed.n_children_spawned)
    else:
        base = np.random.SeedSequence(0 if seed is None else int(seed))
    return [np.random.default_rng(s) for s in base.spawn(int(n))]


def python_random(seed) -> random.Random:
    """A :class:`random.Random` seeded with ``seed`` (``None``: 0), for libraries that take one (igraph).

    Examples
    --------
    >>> python_random(4).random() == python_random(4).random()
    True
    """
    return random.Random(0 if seed is None else int(seed))


@contextmanager
def igraph_seeded(seed):
    """igraph's random choices drawn from :func:`python_random` of ``seed`` inside the block, Python's
    :mod:`random` module again after it.

    igraph's generator is one for the process: the block holds a lock, so a thread that solves communities beside
    the stage (:class:`fraudkit.pipeline.stages.graph._ViewCommunities`) and the stage itself never draw from each
    other's seeded sequence, and each block gives what it gives alone.

    Examples
    --------
    >>> import igraph as ig
    >>> g = ig.Graph.Famous("Zachary")
    >>> with igraph_seeded(3):
    ...     a = g.community_leiden(objective_function="modularity").membership
    >>> with igraph_seeded(3):
    ...     b = g.community_leiden(objective_function="modularity").membership
    >>> a == b
    True
    """
    import igraph as ig

    with _IGRAPH_RNG:
        ig.set_random_number_generator(python_random(seed))
        try:
            yield
        finally:
            ig.set_random_number_generator(random)
