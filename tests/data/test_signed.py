"""A signed file is read back only with the key that signed it; nothing of a refused file is unpickled."""

import os
import pickle

import pytest

from fraudkit.data.signed import KEY_ENV, read_signed, signing_key_path, write_signed
from fraudkit.errors import FraudkitError


class _Planted:
    """Unpickling it would write ``path``: a stand-in for code a hostile pickle runs."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.fixture
def key_file(tmp_path, monkeypatch):
    path = tmp_path / "keys" / "signing.key"
    monkeypatch.setenv(KEY_ENV, str(path))
    return path


def test_what_this_user_wrote_comes_back_and_the_key_is_private(key_file, tmp_path):
    obj = {"threshold": 0.4375, "names": ["a", "b"], "n": 6390}
    path = write_signed(obj, tmp_path / "models.signed")
    assert read_signed(path) == obj
    assert signing_key_path() == key_file and len(key_file.read_bytes()) == 32
    assert (os.stat(key_file).st_mode & 0o777) == 0o600
    assert write_signed(obj, tmp_path / "again.signed").read_bytes() == path.read_bytes()  # the same key


def test_another_key_an_altered_byte_or_an_unsigned_pickle_is_refused_unread(key_file, tmp_path, monkeypatch):
    mine = write_signed([1, 2, 3], tmp_path / "mine.signed")
    altered = tmp_path / "altered.signed"
    data = bytearray(mine.read_bytes())
    data[40] ^= 1
    altered.write_bytes(bytes(data))
    marker = tmp_path / "ran"
    planted = tmp_path / "planted.signed"
    planted.write_bytes(bytes(32) + pickle.dumps(_Planted(marker)))
    bare = tmp_path / "bare.signed"
    bare.write_bytes(pickle.dumps(_Planted(marker))[:20])
    for path in (altered, planted, bare):
        with pytest.raises(FraudkitError, match=f"{path.name}: its signature does not match"):
            read_signed(path)
    assert not marker.exists()
    monkeypatch.setenv(KEY_ENV, str(tmp_path / "other.key"))  # another user: no key yet, then a new one
    with pytest.raises(FraudkitError, match="signature does not match"):
        read_signed(mine)
    write_signed(0, tmp_path / "theirs.signed")
    with pytest.raises(FraudkitError, match="signature does not match"):
        read_signed(mine)


def test_a_key_file_that_is_not_a_key_says_how_to_fix_it(key_file, tmp_path):
    key_file.parent.mkdir()
    key_file.write_bytes(b"short")
    with pytest.raises(FraudkitError, match=r"not a fraudkit signing key \(5 bytes, expected 32\); fix: delete it"):
        write_signed(1, tmp_path / "x.signed")
