"""Tests for fraudkit.data.adapters on the real files (skipped with a reason when they are absent)."""

import hashlib

import numpy as np
import pytest

from fraudkit.data.adapters import TOLOKERS_FEATURES, convert, real_data_dir
from fraudkit.data.generic import load_generic
from fraudkit.errors import DataValidationError

REAL = real_data_dir()
needs_tolokers = pytest.mark.skipif(not (REAL / "tolokers" / "tolokers.npz").exists(),
                                    reason=f"Tolokers not found under {REAL}; set FRAUDKIT_REAL_DATA")
needs_instafake = pytest.mark.skipif(not (REAL / "instafake" / "fakeAccountData.json").exists(),
                                     reason=f"InstaFake not found under {REAL}; set FRAUDKIT_REAL_DATA")


def test_real_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("FRAUDKIT_REAL_DATA", str(tmp_path))
    assert real_data_dir() == tmp_path
    monkeypatch.delenv("FRAUDKIT_REAL_DATA")
    assert real_data_dir().parts[-3:] == ("shared", "data", "real")


@needs_tolokers
def test_tolokers(tmp_path):
    g = convert("tolokers", REAL, tmp_path / "tolokers")  # parent folder works too
    assert (g.n_nodes, g.n_edges) == (11_758, 519_000)
    assert g.feature_names == TOLOKERS_FEATURES
    assert int((g.labels == 1).sum()) == 2_566 and set(np.unique(g.labels)) == {0, 1}
    assert g.split_ids == tuple(range(10))
    with np.load(REAL / "tolokers" / "tolokers.npz") as npz:
        np.testing.assert_allclose(g.features, npz["node_features"], rtol=0, atol=0)
        np.testing.assert_array_equal(g.split(3)[2], npz["test_masks"][3])
        np.testing.assert_array_equal(np.column_stack([g.src, g.dst]), npz["edges"])
    a = g.adjacency()
    assert a.nnz == 2 * 519_000 and (a != a.T).nnz == 0
    # education one-hot sums to one: the names match nodes.tsv (checked during conversion)
    edu = g.features[:, 4:8].sum(axis=1)
    assert (edu == 1).all()
    assert "2,566 fraud (21.82% of labelled)" in g.describe()
    again = load_generic(tmp_path / "tolokers")
    np.testing.assert_array_equal(again.labels, g.labels)


@needs_instafake
def test_instafake_csv(tmp_path):
    g = convert("instafake", REAL / "instafake", tmp_path / "insta", fmt="csv")
    assert (g.n_nodes, g.n_edges, len(g.feature_names)) == (1_194, 0, 8)
    assert int(g.labels.sum()) == 200 and g.labels[:200].all() and not g.labels[200:].any()
    assert g.split_ids == ()
    assert sorted(p.name for p in (tmp_path / "insta").iterdir()) == ["edges.csv", "nodes.csv"]
    digest = hashlib.sha256((REAL / "instafake" / "fakeAccountData.json").read_bytes()).hexdigest()
    assert digest.startswith("a3da0b29")  # the README's checksum: the file the test ran on


def test_bad_source_and_name(tmp_path):
    with pytest.raises(DataValidationError, match="tolokers.npz"):
        convert("tolokers", tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match="unknown data set"):
        convert("elliptic", tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@needs_tolokers
def test_tolokers_names_checked_against_tsv(tmp_path):
    src = tmp_path / "tolokers"
    src.mkdir()
    (src / "tolokers.npz").symlink_to(REAL / "tolokers" / "tolokers.npz")
    lines = (REAL / "tolokers" / "nodes.tsv").read_text().splitlines()
    head = lines[0].split("\t")
    i, j = head.index("approved_rate"), head.index("skipped_rate")
    head[i], head[j] = head[j], head[i]  # swapped column names must be caught
    (src / "nodes.tsv").write_text("\n".join(["\t".join(head)] + lines[1:]) + "\n")
    with pytest.raises(DataValidationError, match="npz column 0 is not approved_rate"):
        convert("tolokers", src, tmp_path / "out")
