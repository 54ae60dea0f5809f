"""Turns: a job beside the stage gives its turn away only while networkit's Leiden child solves its graph."""

from __future__ import annotations

import numpy as np
import pytest

from fraudkit.identification.graph.leiden import networkit_membership
from fraudkit.pipeline.turns import Turns


def _solve():
    graph = [np.array([0, 1, 3, 4]), np.array([1, 2, 4, 5]), np.ones(4)]
    return networkit_membership(6, graph, resolution=1.0, seed=0, n_iterations=2, fallback=None)


def test_the_stage_works_while_the_jobs_child_solves_and_the_job_goes_on_after_it():
    turns, said = Turns(), []

    def job():
        said.append("job before its child")
        membership = _solve()
        said.append("job after its child")
        return membership.tolist()

    running = turns.beside(job)
    with turns.turn():
        said.append("stage")
    assert running.result() == [0, 0, 0, 1, 1, 1]
    assert said == ["job before its child", "stage", "job after its child"]


def test_a_job_without_a_child_is_done_before_the_stage_goes_on():
    turns, said = Turns(), []
    running = turns.beside(lambda: said.append("job"))
    said.append("stage")
    assert said == ["job", "stage"] and running.result() is None


def test_a_jobs_error_is_raised_by_result_and_leaves_the_turn_free():
    turns = Turns()

    def job():
        _solve()
        raise ValueError("the job failed after its child")

    running = turns.beside(job)
    with pytest.raises(ValueError, match="after its child"):
        running.result()
    with turns.turn():  # not held by the failed job
        pass
