"""Python objects written by this user's own fraudkit processes, read back only when their signature matches.

A run keeps what it fitted (the behaviour models, :mod:`fraudkit.pipeline.training`) so that the runs that
reuse it — the red-team drill's worlds, scored in other processes — need not fit it again. scikit-learn models
are Python objects: the only complete way to write one is pickle, and reading a pickle runs whatever code the
file names. So a file is read back only when it carries an HMAC-SHA256 signature made with this user's
signing key, a random 32-byte secret kept in a file only the user can read (``~/.cache/fraudkit/signing.key``,
created on first use; :data:`KEY_ENV` names another file). A file written by another user or machine, or
altered since, fails the check and is refused unread, with :class:`fraudkit.errors.FraudkitError`; the
caller computes the object again. The signature authenticates, it does not encrypt.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import secrets
from pathlib import Path

from fraudkit.data.atomic import write_bytes
from fraudkit.errors import FraudkitError

__all__ = ["write_signed", "read_signed", "signing_key_path", "KEY_ENV"]

KEY_ENV = "FRAUDKIT_SIGNING_KEY_FILE"
"""Environment variable naming the signing key's file (default ``~/.cache/fraudkit/signing.key``)."""

_KEY_BYTES = 32
_TAG_BYTES = hashlib.sha256().digest_size


def signing_key_path() -> Path:
    """The file holding this user's signing key (:data:`KEY_ENV`, else ``~/.cache/fraudkit/signing.key``)."""
    named = os.environ.get(KEY_ENV, "").strip()
    return Path(named) if named else Path.home() / ".cache" / "fraudkit" / "signing.key"


def write_signed(obj, path) -> Path:
    """Pickle ``obj`` to ``path`` (atomically) behind its signature; :func:`read_signed` reads it back.

    Examples
    --------
    >>> import tempfile
    >>> p = write_signed({"threshold": 0.42}, tempfile.mkdtemp() + "/m.signed")
    >>> read_signed(p)
    {'threshold': 0.42}
    """
    blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return write_bytes(path, _tag(_key(create=True), blob) + blob)


def read_signed(path):
    """The object :func:`write_signed` wrote to ``path`` with this user's key.

    Raises
    ------
    FraudkitError
        The signature does not match (another user's or machine's file, or one altered since), the file is
        too short to hold one, or there is no signing key yet: nothing of the file is unpickled.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> p = write_signed([1, 2], tempfile.mkdtemp() + "/x.signed")
    >>> _ = p.write_bytes(p.read_bytes()[:-1] + b"!")  # one byte altered
    >>> read_signed(p)
    Traceback (most recent call last):
    ...
    fraudkit.errors.FraudkitError: .../x.signed: its signature does not match this user's fraudkit signing key (a file written by another user or machine, or altered since); it is not loaded
    """
    data = Path(path).read_bytes()
    key = _key(create=False)
    if key is None or len(data) < _TAG_BYTES or not hmac.compare_digest(data[:_TAG_BYTES],
                                                                        _tag(key, data[_TAG_BYTES:])):
        raise FraudkitError(f"{path}: its signature does not match this user's fraudkit signing key (a file "
                            "written by another user or machine, or altered since); it is not loaded")
    return pickle.loads(data[_TAG_BYTES:])


def _tag(key: bytes, blob: bytes) -> bytes:
    return hmac.new(key, blob, hashlib.sha256).digest()


def _key(*, create: bool) -> bytes | None:
    """This user's signing key; made (readable by the user only) when missing and ``create``; else None."""
    path = signing_key_path()
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(_KEY_BYTES))
        try:
            os.link(tmp, path)  # appears whole, or not at all when another process made it meanwhile
        except FileExistsError:
            pass  # theirs is read below
        finally:
            tmp.unlink()
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(key) != _KEY_BYTES:
        raise FraudkitError(f"{path}: not a fraudkit signing key ({len(key)} bytes, expected {_KEY_BYTES}); fix: "
                            f"delete it (a new one is made) or point {KEY_ENV} at another file")
    return key
