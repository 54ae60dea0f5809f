"""Atomic outputs: a failed run leaves the last good output intact.

Every file fraudkit writes goes through here: it is written to a temporary
sibling and renamed into place only when complete. Directories (a dataset,
a run, a report) are built in a temporary sibling and swapped in at the end;
the previous version is removed only after the new one is in place.

A directory output is guarded (:func:`check_output`): it is replaced only when it is new, empty or holds
an earlier output of the same kind (the marker file :data:`MARKER` the kit writes into every folder output);
a folder that is, is inside of, or contains an input is refused; a second process writing the same output
is refused while the first holds its lock; temporary folders of killed runs are removed by the next run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from fraudkit.errors import OutputError

__all__ = ["atomic_path", "write_text", "write_bytes", "write_parquet", "ParquetStream", "atomic_directory",
           "check_output", "check_name", "MARKER", "FILE_MODE"]

MARKER = ".fraudkit-output.json"
"""The file the kit writes into every folder output: ``{"kind": ...}``; what may be replaced later."""

FILE_MODE = 0o644
"""Permission mode of every published file (temporary files are created 0600, then set to this)."""

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "x.txt") as tmp:
    ...     _ = tmp.write_text("hi")
    >>> (d / "x.txt").read_text()
    'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_parquet(df, path, **kwargs) -> Path:
    """Write a pandas DataFrame or pyarrow Table to Parquet atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **kwargs)
    return Path(path)


class ParquetStream:
    """A Parquet file written a table at a time, each table written on a background thread while the caller
    makes the next one: ``pyarrow.parquet.ParquetWriter`` with one write in flight.

    pyarrow encodes, compresses and writes without the GIL, so a writer of many chunks (the decisions of a
    large world, 26M rows in 2M-row chunks) overlaps the writing of one chunk with the computing of the next,
    on the machine's second core. ``prepare`` (a function of the table, such as a cast to the file's schema)
    runs on the thread too. At most one table waits beside the one being made. A failed write is raised by
    the next :meth:`write_table` or by :meth:`close`. The file is written where it is asked: the caller
    writes into a temporary path or folder that it publishes (:func:`atomic_path`).

    Examples
    --------
    >>> import tempfile, pathlib, pyarrow as pa, pyarrow.parquet as pq
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "x.parquet"
    >>> with ParquetStream(path, pa.schema([("x", pa.int64())])) as out:
    ...     for a in range(3):
    ...         out.write_table(pa.table({"x": [a, a + 10]}))
    >>> pq.read_table(path)["x"].to_pylist()
    [0, 10, 1, 11, 2, 12]
    """

    def __init__(self, path, schema, *, prepare=None, **kwargs):
        import pyarrow.parquet as pq
        from concurrent.futures import ThreadPoolExecutor

        self._writer = pq.ParquetWriter(path, schema, **kwargs)
        self._prepare = prepare
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="fraudkit-parquet")
        self._pending = None

    def write_table(self, table, **kwargs) -> None:
        """Write ``table`` (after ``prepare``) once the previous table is written; returns at once."""
        self._wait()
        self._pending = self._pool.submit(self._write, table, kwargs)

    def _write(self, table, kwargs):
        self._writer.write_table(table if self._prepare is None else self._prepare(table), **kwargs)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Wait for the last write and close the file (also after a failed write)."""
        try:
            self._wait()
        finally:
            self._pool.shutdown(wait=True)
            self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def check_name(name: str, *, what: str = "name") -> str:
    """Refuse a name that is not one safe path component (letters, digits, ``.``, ``_``, ``-``).

    Examples
    --------
    >>> check_name("2026-12-02-abc")
    '2026-12-02-abc'
    >>> check_name("../escape", what="run id")
    Traceback (most recent call last):
    ...
    fraudkit.errors.OutputError: run id '../escape' is not a safe folder name: use letters, digits, '.', '_' and '-' only, starting with a letter or digit (e.g. 2026-12-02-demo)
    """
    text = str(name)
    if not _SAFE_NAME.match(text) or text in (".", ".."):
        raise OutputError(f"{what} {text!r} is not a safe folder name: use letters, digits, '.', '_' and '-' only, "
                          "starting with a letter or digit (e.g. 2026-12-02-demo)")
    return text


def check_output(path, *, kind: str, inputs=(), force: bool = False) -> Path:
    """Refuse an output folder the kit must not replace; return it resolved.

    Parameters
    ----------
    path : path
        The output folder.
    kind : str
        What the kit writes there (``"run"``, ``"dataset"``, ``"quarantine"``, ``"reports"`` ...).
    inputs : iterable of path
        Folders or files the command reads: the output may not be one of them, inside one or contain one.
    force : bool, default=False
        Replace a non-empty folder the kit did not write (never an input).

    Raises
    ------
    OutputError
        With the reason and the fix.
    """
    out = Path(path).resolve()
    for item in inputs:
        if item is None:
            continue
        src = Path(item).resolve()
        if out == src or src in out.parents or out in src.parents:
            rel = "is" if out == src else ("is inside" if src in out.parents else "contains")
            raise OutputError(f"output folder {path} {rel} the input {item}; an output may never be an input. "
                              "Fix: choose a new folder outside the input (e.g. runs/<name>).")
    if out.exists() and not out.is_dir():
        raise OutputError(f"output {path} is a file, not a folder. Fix: choose a new folder name.")
    if out.is_dir() and any(out.iterdir()) and not force:
        found = _marker_kind(out)
        if found is None:
            example = sorted(p.name for p in out.iterdir())[0]
            raise OutputError(f"output folder {path} holds files fraudkit did not write (e.g. {example}); it would be "
                              "replaced. Fix: choose a new or empty folder, or pass --force to replace it.")
        if found != kind:
            raise OutputError(f"output folder {path} holds a fraudkit {found}, not a {kind}; it would be replaced. "
                              f"Fix: choose another folder, or pass --force to replace the {found}.")
    return out


@contextlib.contextmanager
def atomic_directory(path, *, keep_failed: bool = False, kind: str | None = None, inputs=(), force: bool = False):
    """Yield a fresh temporary directory that replaces ``path`` on success.

    On an exception the temporary directory is removed (or kept beside the
    target as ``.<name>.failed`` when ``keep_failed``) and ``path`` is left
    as it was.

    With ``kind``, the output is guarded first (:func:`check_output` with ``inputs`` and ``force``), a lock
    beside it keeps a second writer out, leftovers of killed runs are removed, and the marker :data:`MARKER`
    is written into the new folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "out").mkdir(); _ = (d / "out" / "thesis.txt").write_text("mine")
    >>> with atomic_directory(d / "out", kind="run") as tmp:
    ...     pass
    Traceback (most recent call last):
    ...
    fraudkit.errors.OutputError: output folder ... holds files fraudkit did not write (e.g. thesis.txt); it would be replaced. Fix: choose a new or empty folder, or pass --force to replace it.
    >>> (d / "out" / "thesis.txt").read_text()
    'mine'
    """
    path = Path(path)
    with contextlib.ExitStack() as stack:
        if kind is not None:
            check_output(path, kind=kind, inputs=inputs, force=force)
            path.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(_lock(path))
            _remove_leftovers(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            yield tmp
            if kind is not None:
                (tmp / MARKER).write_text(json.dumps({"kind": kind}), encoding="utf-8")
            os.chmod(tmp, 0o755)
        except BaseException:
            if keep_failed:
                failed = path.parent / f".{path.name}.failed"
                shutil.rmtree(failed, ignore_errors=True)
                os.replace(tmp, failed)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


# --- private helpers ----------------------------------------------------------------------------


def _marker_kind(folder: Path) -> str | None:
    marker = folder / MARKER
    if marker.is_file():
        try:
            return str(json.loads(marker.read_text(encoding="utf-8")).get("kind"))
        except (ValueError, AttributeError):
            return None
    # outputs of earlier fraudkit versions: a dataset or a run carries manifest.json
    manifest = folder / "manifest.json"
    if manifest.is_file():
        try:
            m = json.loads(manifest.read_text(encoding="utf-8"))
        except ValueError:
            return None
        return "run" if "stages_run" in m else "dataset"
    return None


@contextlib.contextmanager
def _lock(path: Path):
    lock = path.parent / f".{path.name}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(f"another fraudkit process is writing {path} (lock {lock}); wait for it to finish, "
                              "or choose another output folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


def _remove_leftovers(path: Path) -> None:
    """Temporary, old and failed siblings of ``path`` left by killed runs (we hold the lock: none is live)."""
    for p in path.parent.glob(f".{_glob_escape(path.name)}.*"):
        name = p.name[len(path.name) + 2:]
        if p.is_dir() and (name.endswith(".tmp") or name.startswith("old-")):
            shutil.rmtree(p, ignore_errors=True)


def _glob_escape(text: str) -> str:
    """``text`` with glob metacharacters escaped."""
    return re.sub(r"([*?\[])", r"[\1]", text)
