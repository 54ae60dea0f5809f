"""Reading YAML the kit is given (rule sets, scenarios) safely: bounded in size, without aliases.

``yaml.safe_load`` constructs only plain data, but it still expands anchors and aliases: a few hundred bytes
("billion laughs") become gigabytes once the values are copied or printed. User files here are small,
hand-written configuration, so aliases are refused outright and the file size is bounded.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from fraudkit.errors import FraudkitError

__all__ = ["MAX_YAML_BYTES", "read_yaml", "parse_yaml"]

MAX_YAML_BYTES = 1_000_000
"""Largest YAML file accepted (a rule set of thousands of rules is a few hundred kB)."""


def read_yaml(path, *, what: str = "YAML file", max_bytes: int = MAX_YAML_BYTES):
    """Read and parse a YAML file; refuse it when too large, not UTF-8, malformed or using aliases.

    Parameters
    ----------
    path : path
    what : str
        Named in errors ("rule set", "scenario").
    max_bytes : int, default=MAX_YAML_BYTES

    Raises
    ------
    FraudkitError
        Naming the file, the cause and the fix.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise FraudkitError(f"{what} {path}: cannot be read ({e.strerror}). Fix: check the path.") from None
    if size > max_bytes:
        raise FraudkitError(f"{what} {path} is {size:,} bytes (at most {max_bytes:,}); a {what} is a short "
                            "hand-written file. Fix: split it, or check that this is the file you meant.")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise FraudkitError(f"{what} {path} is not UTF-8 text (byte {e.start}). Fix: save it as UTF-8.") from None
    return parse_yaml(text, what=f"{what} {path}", max_bytes=max_bytes)


def parse_yaml(text: str, *, what: str = "YAML", max_bytes: int = MAX_YAML_BYTES):
    """Parse YAML text into plain data (dicts, lists, scalars); no aliases, bounded size.

    Examples
    --------
    >>> parse_yaml("rules: [{id: r1}]")
    {'rules': [{'id': 'r1'}]}
    >>> parse_yaml("a: &x [1, 2]\\nb: *x", what="rule set")
    Traceback (most recent call last):
    ...
    fraudkit.errors.FraudkitError: rule set: YAML aliases (*x) are not accepted, line 2; write the values out in full
    """
    if len(text) > max_bytes:
        raise FraudkitError(f"{what} is {len(text):,} characters (at most {max_bytes:,}). Fix: split it.")
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except _AliasFound as e:
        raise FraudkitError(f"{what}: YAML aliases (*{e.anchor}) are not accepted, line {e.line}; "
                            "write the values out in full") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise FraudkitError(f"{what}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None


# --- private helpers ----------------------------------------------------------------------------


class _AliasFound(Exception):
    def __init__(self, anchor, line):
        super().__init__(anchor)
        self.anchor, self.line = anchor, line


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _AliasFound(event.anchor, event.start_mark.line + 1)
        return super().compose_node(parent, index)
