"""igraph's seeded random choices: one seeded block at a time, each giving what it gives alone."""

from __future__ import annotations

import random
import sys
import threading
import time

import igraph as ig

from fraudkit.randomness import igraph_seeded


def _leiden(g, seed):
    with igraph_seeded(seed):
        return g.community_leiden(objective_function="modularity", n_iterations=1).membership


def test_igraph_seeded_blocks_are_held_one_at_a_time():
    inside, order = threading.Event(), []

    def other():
        inside.wait()
        with igraph_seeded(1):
            order.append("other")

    t = threading.Thread(target=other)
    t.start()
    with igraph_seeded(0):
        inside.set()
        time.sleep(0.3)  # the other thread is waiting to enter: without the lock it would append now
        order.append("first")
    t.join()
    assert order == ["first", "other"]


def test_seeded_partitions_in_two_threads_are_those_solved_alone():
    g = ig.Graph.Lattice([20, 20], circular=False)
    alone = {seed: _leiden(g, seed) for seed in range(6)}
    assert len({tuple(m) for m in alone.values()}) > 1  # the seed matters: a mixed-up stream would show
    got, errors = {}, []

    def solve(seeds):
        try:
            for _ in range(30):
                for seed in seeds:
                    got.setdefault(seed, set()).add(tuple(_leiden(g, seed)))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=solve, args=(s,)) for s in ((0, 1, 2), (3, 4, 5))]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch as often as they can: between seeding and solving, too
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors
    assert {seed: {tuple(m)} for seed, m in alone.items()} == got


def test_igraph_draws_from_pythons_random_module_after_the_block():
    g = ig.Graph.Lattice([10, 10], circular=False)
    _leiden(g, 0)
    random.seed(7)
    a = g.community_leiden(objective_function="modularity", n_iterations=1).membership
    random.seed(7)
    b = g.community_leiden(objective_function="modularity", n_iterations=1).membership
    assert a == b
