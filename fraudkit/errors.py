"""Exceptions and warnings that name what is wrong and what to do."""

from __future__ import annotations

__all__ = [
    "FraudkitError",
    "OutputError",
    "DataValidationError",
    "ValidationIssue",
    "RuleError",
    "MissingInputError",
    "ConvergenceWarning",
]

from dataclasses import dataclass


class FraudkitError(Exception):
    """Base class of every error fraudkit raises on purpose."""


@dataclass(frozen=True)
class ValidationIssue:
    """One problem found in an input file.

    Parameters
    ----------
    file : str
        The file (or table, when read from memory).
    column : str or None
        The column, when the problem is in one.
    problem : str
        What is wrong, e.g. ``"duplicate key"``.
    example : str or None
        One offending value (or row key), as text.
    fix : str
        What to do about it.
    n_rows : int, default=0
        How many rows are affected (0 when the problem is not per row).
    """

    file: str
    column: str | None
    problem: str
    example: str | None
    fix: str
    n_rows: int = 0

    def __str__(self) -> str:
        where = self.file + (f", column {self.column!r}" if self.column else "")
        rows = f" ({self.n_rows} rows)" if self.n_rows else ""
        ex = f"; e.g. {self.example}" if self.example is not None else ""
        return f"{where}: {self.problem}{rows}{ex}. Fix: {self.fix}"


class DataValidationError(FraudkitError):
    """Input data broke the contract. ``issues`` lists every problem found."""

    def __init__(self, issues):
        self.issues = tuple(issues)
        lines = [f"{len(self.issues)} problem(s) in the input data:"]
        lines += [f"  - {i}" for i in self.issues]
        super().__init__("\n".join(lines))


class RuleError(FraudkitError):
    """A rule failed to load or compile; the message names the rule."""


class MissingInputError(FraudkitError):
    """A stage needs a table or column the dataset does not have."""


class ConvergenceWarning(UserWarning):
    """An iterative method stopped at its iteration limit before converging."""


class OutputError(FraudkitError):
    """An output folder the kit refuses to write: it holds files the kit did not write, it is (or is inside, or
    contains) an input, another fraudkit process is writing it, or its name is unsafe."""
