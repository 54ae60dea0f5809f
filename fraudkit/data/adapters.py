"""Real labelled data sets -> the generic graph-fraud format (:mod:`fraudkit.data.generic`).

Two public data sets are supported (see ``/work/shared/data/real/README.md``
for their provenance and licences):

``tolokers``
    Toloka crowd workers (Platonov et al., ICLR 2023): 11,758 workers, 10
    profile features, 519,000 co-task edges, label 1 = banned, ten fixed
    50/25/25 train/val/test splits. Read from ``tolokers.npz`` (features,
    edges, labels, masks) with the feature names from ``nodes.tsv``.
``instafake``
    InstaFake (Akyon & Kalfaoglu 2019): 200 fake and 994 real Instagram
    profiles, 8 profile features, no edges and no splits (the benchmark draws
    stratified 50/25/25 splits with fixed seeds).
"""

from __future__ import annotations

__all__ = ["convert", "convert_tolokers", "convert_instafake", "real_data_dir", "ADAPTERS"]

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from fraudkit.data.generic import GenericGraph, load_generic, write_generic
from fraudkit.errors import DataValidationError, ValidationIssue

TOLOKERS_FEATURES = (
    "approved_rate", "skipped_rate", "expired_rate", "rejected_rate",
    "education_none", "education_basic", "education_middle", "education_high",
    "english_profile", "english_tested",
)
"""Column names of ``tolokers.npz['node_features']``, checked against ``nodes.tsv`` on conversion."""

INSTAFAKE_FEATURES = (
    "userFollowerCount", "userFollowingCount", "userBiographyLength", "userMediaCount",
    "userHasProfilPic", "userIsPrivate", "usernameDigitCount", "usernameLength",
)


def real_data_dir() -> Path:
    """Folder holding the real data sets: ``$FRAUDKIT_REAL_DATA``, else ``<repo>/../shared/data/real``.

    Examples
    --------
    >>> real_data_dir().name
    'real'
    """
    env = os.environ.get("FRAUDKIT_REAL_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


def convert(name: str, src, out, *, fmt: str = "parquet") -> GenericGraph:
    """Convert the real data set ``name`` found in ``src`` into a generic folder ``out``.

    Parameters
    ----------
    name : {"tolokers", "instafake"}
    src : str or Path
        The data set's own folder (holding ``tolokers.npz`` or the InstaFake
        JSON files), or the parent folder of all real data sets.
    out : str or Path
        Output folder, replaced atomically once written and validated.
    fmt : {"parquet", "csv"}, default="parquet"

    Returns
    -------
    GenericGraph
        The converted data, re-read from ``out`` (``.describe()`` summarises it).

    Examples
    --------
    >>> import tempfile
    >>> g = convert("instafake", real_data_dir(), tempfile.mkdtemp() + "/insta")  # doctest: +SKIP
    >>> g.n_nodes  # doctest: +SKIP
    1194
    """
    if name not in ADAPTERS:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(ADAPTERS)}")
    return ADAPTERS[name](src, out, fmt=fmt)


def convert_tolokers(src, out, *, fmt: str = "parquet") -> GenericGraph:
    """Tolokers -> generic folder: features, co-task edges (stored once), labels, ten splits.

    See :func:`convert`.
    """
    src = _dataset_dir(src, "tolokers", "tolokers.npz")
    with np.load(src / "tolokers.npz") as npz:
        x = npz["node_features"].astype(np.float64)
        y = npz["node_labels"].astype(np.int8)
        edges = npz["edges"].astype(np.int64)
        masks = {k: npz[f"{k}_masks"].astype(bool) for k in ("train", "val", "test")}
    n = len(y)
    if x.shape != (n, len(TOLOKERS_FEATURES)):
        raise DataValidationError([ValidationIssue(
            "tolokers.npz", "node_features", "unexpected shape", str(x.shape),
            f"expected ({n}, {len(TOLOKERS_FEATURES)}); use the Platonov et al. release")])
    tsv = src / "nodes.tsv"
    if tsv.exists():
        _check_tolokers_names(tsv, x, y)
    nodes = pd.DataFrame(x, columns=list(TOLOKERS_FEATURES))
    nodes.insert(0, "id", np.arange(n, dtype=np.int64))
    nodes["label"] = y
    for k in range(masks["train"].shape[0]):
        for kind in ("train", "val", "test"):
            nodes[f"{kind}_{k}"] = masks[kind][k]
    edge_df = pd.DataFrame({"src": edges[:, 0], "dst": edges[:, 1],
                            "relation": np.full(len(edges), "co_task", dtype=object)})
    write_generic(out, nodes, edge_df, fmt=fmt)
    return load_generic(out, name="tolokers")


def convert_instafake(src, out, *, fmt: str = "parquet") -> GenericGraph:
    """InstaFake -> generic folder: profile features, ``label = isFake``, no edges, no splits.

    Fake profiles come first (ids ``0..199``), then real ones. See :func:`convert`.
    """
    src = _dataset_dir(src, "instafake", "fakeAccountData.json")
    frames = []
    for fname in ("fakeAccountData.json", "realAccountData.json"):
        with open(src / fname, encoding="utf-8") as fh:
            frames.append(pd.DataFrame(json.load(fh)))
    raw = pd.concat(frames, ignore_index=True)
    missing = [c for c in (*INSTAFAKE_FEATURES, "isFake") if c not in raw.columns]
    if missing:
        raise DataValidationError([ValidationIssue(
            "instafake/*.json", c, "missing field", None, "use the Akyon & Kalfaoglu release") for c in missing])
    nodes = raw[list(INSTAFAKE_FEATURES)].astype(np.float64)
    nodes.insert(0, "id", np.arange(len(raw), dtype=np.int64))
    nodes["label"] = raw["isFake"].astype(np.int8)
    edge_df = pd.DataFrame({"src": pd.Series([], dtype=np.int64), "dst": pd.Series([], dtype=np.int64)})
    write_generic(out, nodes, edge_df, fmt=fmt)
    return load_generic(out, name="instafake")


ADAPTERS = {"tolokers": convert_tolokers, "instafake": convert_instafake}


# --------------------------------------------------------------------------- private helpers


def _dataset_dir(src, name: str, marker: str) -> Path:
    src = Path(src)
    for cand in (src, src / name):
        if (cand / marker).exists():
            return cand
    raise DataValidationError([ValidationIssue(
        str(src), None, "file not found", marker,
        f"pass the {name} folder (holding {marker}) or its parent; set FRAUDKIT_REAL_DATA for the tests")])


def _check_tolokers_names(tsv: Path, x: np.ndarray, y: np.ndarray) -> None:
    """Check the npz columns against the readable ``nodes.tsv`` so the names are right."""
    t = pd.read_csv(tsv, sep="\t")
    problems = []
    if len(t) != len(x) or not (t["banned"].to_numpy() == y).all():
        problems.append("row order or labels differ from the npz")
    else:
        for i, c in enumerate(TOLOKERS_FEATURES):
            if c.startswith("education_"):
                ref = (t["education"] == c.removeprefix("education_")).to_numpy(dtype=float)
            else:
                ref = t[c].to_numpy(dtype=float)
            if np.abs(ref - x[:, i]).max() > 1e-5:
                problems.append(f"npz column {i} is not {c}")
    if problems:
        raise DataValidationError([ValidationIssue("nodes.tsv", None, p, None,
                                                   "use the matching nodes.tsv and tolokers.npz") for p in problems])
