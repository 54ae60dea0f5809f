"""The generic graph-fraud input format: a folder of ``nodes``, ``edges`` and optional ``events``.

Real labelled data sets (Tolokers, InstaFake, a team's own export) come in many
shapes; :mod:`fraudkit.data.adapters` turns each into this one format, and the graph
benchmark (:mod:`fraudkit.evaluation.graphbench`) reads only this format. The layout is
documented in ``docs/generic-format.md``:

``nodes.parquet`` (or ``nodes.csv``)
    ``id`` (unique), numeric feature columns, optional ``label`` (1 fraud,
    0 honest, -1 unknown), optional boolean split columns ``train_<k>``,
    ``val_<k>``, ``test_<k>``, optional ``type`` (users and products in one
    table: the kit keeps the labelled type and turns edges to the other
    types into events, :func:`load_generic`).
``edges.parquet`` (or ``edges.csv``)
    ``src``, ``dst`` (node ids), optional ``relation``, ``weight``, ``time``.
``events.parquet`` (or ``events.csv``), optional
    ``account`` (node id), ``target``, ``time``, ``action``.

:func:`load_generic` checks all of it and raises one
:class:`~fraudkit.errors.DataValidationError` listing every problem.
"""

from __future__ import annotations

__all__ = [
    "GenericGraph",
    "load_generic",
    "canonical_order",
    "write_generic",
    "NODE_ID",
    "NODE_TYPE",
    "LABEL",
    "EDGE_COLUMNS",
    "EVENT_COLUMNS",
    "SPLIT_KINDS",
]

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fraudkit.data.atomic import atomic_directory
from fraudkit.data.numeric import round_significant
from fraudkit.errors import DataValidationError, ValidationIssue

NODE_ID = "id"
NODE_TYPE = "type"
LABEL = "label"
EDGE_COLUMNS = ("src", "dst", "relation", "weight", "time")
EVENT_COLUMNS = ("account", "target", "time", "action")
SPLIT_KINDS = ("train", "val", "test")
_SPLIT_RE = re.compile(r"^(train|val|test)_(\d+)$")
_SUFFIXES = (".parquet", ".csv")


@dataclass(frozen=True, eq=False)
class GenericGraph:
    """A labelled attributed graph read from the generic format.

    Nodes are indexed ``0..n-1`` in file order; ``node_ids[i]`` is the key of
    node ``i``. Arrays are read-only views; build new arrays rather than
    editing them.

    Attributes
    ----------
    name : str
        Data set name (the folder name unless given).
    node_ids : ndarray of shape (n_nodes,)
    features : ndarray of shape (n_nodes, n_features), float64
    feature_names : tuple of str
    labels : ndarray of shape (n_nodes,), int8, or None
        1 fraud, 0 honest, -1 unknown; None when the nodes have no label column.
    splits : dict of str to ndarray of bool
        Split masks by column name, e.g. ``{"train_0": ..., "val_0": ..., "test_0": ...}``.
    src, dst : ndarray of shape (n_edges,), int64
        Edge endpoints as node indices.
    weight : ndarray of shape (n_edges,), float64
        Edge weights (1.0 when the file has none).
    relation : ndarray of shape (n_edges,) or None
    time : ndarray of shape (n_edges,) or None
    events : DataFrame or None
        The events table as read (``account``, ``target``, ``time``, ``action``).
    path : Path or None
    scored_type : str or None
        With a node ``type`` column: the type of the nodes kept (the others became event targets).
    n_other_nodes : int
        Number of nodes of the other types (projected away).
    """

    name: str
    node_ids: np.ndarray
    features: np.ndarray
    feature_names: tuple
    labels: np.ndarray | None
    splits: dict = field(default_factory=dict)
    src: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    dst: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    weight: np.ndarray = field(default_factory=lambda: np.zeros(0))
    relation: np.ndarray | None = None
    time: np.ndarray | None = None
    events: pd.DataFrame | None = None
    path: Path | None = None
    scored_type: str | None = None
    n_other_nodes: int = 0

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.node_ids)

    @property
    def n_edges(self) -> int:
        """Number of edge rows (as stored, before symmetrisation)."""
        return len(self.src)

    @property
    def split_ids(self) -> tuple:
        """The split numbers ``k`` that have all of ``train_k``, ``val_k`` and ``test_k``."""
        ks = {int(m.group(2)) for c in self.splits if (m := _SPLIT_RE.match(c))}
        return tuple(sorted(k for k in ks if all(f"{s}_{k}" in self.splits for s in SPLIT_KINDS)))

    def split(self, k: int) -> tuple:
        """Return the ``(train, val, test)`` boolean masks of split ``k``."""
        if k not in self.split_ids:
            raise KeyError(f"{self.name} has no complete split {k}; it has {list(self.split_ids)}")
        return tuple(self.splits[f"{s}_{k}"] for s in SPLIT_KINDS)

    def adjacency(self, relation=None, *, symmetric: bool = True, sign: str = "any") -> sp.csr_matrix:
        """Node-by-node adjacency as a CSR matrix of edge weights.

        Parameters
        ----------
        relation : str or None, default=None
            Keep only edges of this relation; None keeps every edge.
        symmetric : bool, default=True
            Make the graph undirected: entry ``(i, j)`` is the larger of the
            ``i -> j`` and ``j -> i`` weights, so an edge stored once or in
            both directions gives the same matrix. Repeated rows of the same
            directed pair add up.
        sign : {"any", "positive", "negative"}, default="any"
            Signed edges (a negative ``weight``: distrust, a bad rating): ``any``
            keeps every edge with its absolute weight (a tie is a tie), the
            others keep only edges of that sign (absolute weights).

        Returns
        -------
        scipy.sparse.csr_matrix of shape (n_nodes, n_nodes), float64

        Examples
        --------
        >>> g = GenericGraph("toy", np.array([0, 1, 2]), np.zeros((3, 1)), ("x",), None,
        ...                  src=np.array([0, 1]), dst=np.array([1, 2]), weight=np.ones(2))
        >>> g.adjacency().toarray().tolist()
        [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
        """
        if sign not in ("any", "positive", "negative"):
            raise ValueError(f"sign must be 'any', 'positive' or 'negative', got {sign!r}")
        keep = np.ones(self.n_edges, dtype=bool) if sign == "any" else (
            self.weight > 0 if sign == "positive" else self.weight < 0)
        if relation is not None:
            if self.relation is None:
                raise KeyError(f"{self.name}: edges have no relation column; use relation=None")
            keep = keep & (self.relation == relation)
            if not (self.relation == relation).any():
                raise KeyError(f"{self.name}: no edge has relation {relation!r}; "
                               f"relations are {sorted(set(self.relation.tolist()))}")
        n = self.n_nodes
        adj = sp.csr_matrix((np.abs(self.weight[keep]), (self.src[keep], self.dst[keep])), shape=(n, n))
        adj.sum_duplicates()
        if symmetric:
            adj = adj.maximum(adj.T).tocsr()
        return adj

    def event_projection(self, *, max_degree: int = 200) -> sp.csr_matrix:
        """Node-by-node adjacency of shared event targets: the kit's projection of a bipartite graph.

        A user-product graph comes in as ``events`` (``account`` a node, ``target`` the product, seller or
        item it acted on); two nodes are linked when they acted on the same target, with weight
        ``sum 1 / log(1 + n)`` over their shared targets (``n`` the target's number of distinct accounts,
        Adamic-Adar), so a niche target ties more than a popular one. Targets with more than ``max_degree``
        accounts tie no one (a bestseller says nothing, and would add ``n**2`` edges).

        Returns
        -------
        scipy.sparse.csr_matrix of shape (n_nodes, n_nodes), symmetric, zero diagonal

        Examples
        --------
        >>> ev = pd.DataFrame({"account": [1, 2, 3, 3], "target": ["p", "p", "p", "q"]})
        >>> g = GenericGraph("toy", np.array([1, 2, 3]), np.zeros((3, 1)), ("x",), None, events=ev)
        >>> (g.event_projection() > 0).toarray().astype(int).tolist()
        [[0, 1, 1], [1, 0, 1], [1, 1, 0]]
        """
        n = self.n_nodes
        if self.events is None or not len(self.events):
            return sp.csr_matrix((n, n))
        node = pd.Index(self.node_ids).get_indexer(self.events["account"])
        pairs = pd.DataFrame({"node": node, "target": self.events["target"].astype(str).to_numpy()})
        pairs = pairs[node >= 0].drop_duplicates()
        code, _ = pd.factorize(pairs["target"], sort=True)
        deg = np.bincount(code)
        keep = (deg[code] >= 2) & (deg[code] <= max_degree)
        inc = sp.csr_matrix((1.0 / np.log1p(deg[code[keep]]), (pairs["node"].to_numpy()[keep], code[keep])),
                            shape=(n, len(deg)))
        ones = inc.copy()
        ones.data = np.ones_like(ones.data)
        proj = (inc @ ones.T).tocsr()  # sum over shared targets of the target's weight
        # rounded: the sum's last bits follow the order of the targets' names, which must not matter
        proj.data = round_significant(proj.data)
        proj.setdiag(0)
        proj.eliminate_zeros()
        proj = proj.maximum(proj.T).tocsr()
        proj.sort_indices()  # a canonical layout: the entries' storage order must not follow the target names
        return proj

    def permuted(self, order) -> "GenericGraph":
        """The same graph with node ``order[i]`` as node ``i``; edges follow, sorted by their new endpoints.

        Examples
        --------
        >>> g = GenericGraph("toy", np.array([10, 20, 30]), np.arange(3.0)[:, None], ("x",), None,
        ...                  src=np.array([0]), dst=np.array([2]), weight=np.ones(1))
        >>> h = g.permuted([2, 0, 1])
        >>> h.node_ids.tolist(), h.src.tolist(), h.dst.tolist()
        ([30, 10, 20], [1], [0])
        """
        order = np.asarray(order, dtype=np.int64)
        if np.sort(order).tolist() != list(range(self.n_nodes)):
            raise ValueError(f"order must be a permutation of 0..{self.n_nodes - 1}")
        inv = np.empty_like(order)
        inv[order] = np.arange(len(order))
        src, dst = inv[self.src], inv[self.dst]
        e = np.lexsort((dst, src))
        pick = (lambda a: None if a is None else np.asarray(a)[e])
        return GenericGraph(self.name, self.node_ids[order], self.features[order], self.feature_names,
                            None if self.labels is None else self.labels[order],
                            {k: v[order] for k, v in self.splits.items()}, src[e], dst[e], self.weight[e],
                            pick(self.relation), pick(self.time), self.events, self.path, self.scored_type,
                            self.n_other_nodes)

    def describe(self) -> str:
        """A few lines on size, labels and splits."""
        lines = [f"{self.name}: {self.n_nodes:,} nodes, {self.feature_names.__len__()} features, "
                 f"{self.n_edges:,} edges" + (f" ({self.path})" if self.path else "")]
        if self.scored_type is not None:
            lines.append(f"scored type: {self.scored_type!r} ({self.n_other_nodes:,} nodes of other types "
                         "projected through their edges)")
        if self.labels is not None:
            pos, neg = int((self.labels == 1).sum()), int((self.labels == 0).sum())
            unk = self.n_nodes - pos - neg
            share = pos / max(pos + neg, 1)
            lines.append(f"labels: {pos:,} fraud ({share:.2%} of labelled), {neg:,} honest, {unk:,} unknown")
        else:
            lines.append("labels: none")
        lines.append(f"splits: {len(self.split_ids)}" + (
            f" (train/val/test sizes of split {self.split_ids[0]}: "
            + "/".join(str(int(m.sum())) for m in self.split(self.split_ids[0])) + ")"
            if self.split_ids else ""))
        if self.relation is not None:
            lines.append("relations: " + ", ".join(f"{r} {c:,}" for r, c in
                                                   pd.Series(self.relation).value_counts().items()))
        if self.events is not None:
            lines.append(f"events: {len(self.events):,} rows")
        return "\n".join(lines)


def load_generic(path, *, name: str | None = None, scored_type: str | None = None) -> GenericGraph:
    """Read and validate a generic graph-fraud folder.

    Parameters
    ----------
    path : str or Path
        Folder with ``nodes`` and ``edges`` (and optionally ``events``), each
        as ``.parquet`` or ``.csv``.
    name : str, optional
        Data set name; defaults to the folder name.
    scored_type : str, optional
        With a node ``type`` column: the type whose nodes are scored (features, labels, metrics). By
        default the one type that carries labels (or the only type).

    Returns
    -------
    GenericGraph

    Raises
    ------
    DataValidationError
        Listing every problem: missing file or column, duplicate node id,
        non-numeric or missing feature values, labels outside {-1, 0, 1},
        edge endpoints or event accounts that are not nodes, overlapping
        split masks; with a ``type`` column, a missing or ambiguous scored
        type, labels or splits on other types, edges with no scored endpoint.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> d = tempfile.mkdtemp()
    >>> nodes = pd.DataFrame({"id": [1, 2, 3], "x": [0.1, 0.5, 0.9], "label": [0, 1, -1]})
    >>> edges = pd.DataFrame({"src": [1, 2], "dst": [2, 3]})
    >>> _ = write_generic(d, nodes, edges)
    >>> g = load_generic(d)
    >>> g.n_nodes, g.n_edges, g.labels.tolist()
    (3, 2, [0, 1, -1])
    """
    path = Path(path)
    issues: list[ValidationIssue] = []
    if not path.is_dir():
        raise DataValidationError([ValidationIssue(str(path), None, "folder not found", None,
                                                   "pass a folder holding nodes and edges files")])
    nodes_file, nodes = _read_table(path, "nodes", issues, required=True)
    edges_file, edges = _read_table(path, "edges", issues, required=True)
    events_file, events = _read_table(path, "events", issues, required=False)
    if nodes is None or edges is None:
        raise DataValidationError(issues)

    others, kind = None, None
    if NODE_TYPE in nodes.columns and NODE_ID in nodes.columns:
        nodes, others, kind = _split_types(nodes_file, nodes, scored_type, issues)
        if kind is None:
            raise DataValidationError(issues)
    elif scored_type is not None:
        issues.append(ValidationIssue(nodes_file, NODE_TYPE, "missing column", f"scored_type={scored_type!r}",
                                      "add a 'type' column to nodes, or call without scored_type"))
    node_ids, features, names, labels, splits = _check_nodes(nodes_file, nodes, issues)
    index = pd.Index(node_ids).drop_duplicates() if node_ids is not None else None  # unique even when invalid
    every = index if others is None or index is None else index.append(pd.Index(others[NODE_ID]))
    src, dst, weight, relation, time = _check_edges(edges_file, edges, every, issues)
    if others is not None and index is not None and not issues:
        # edges that reach another type become events of the scored node on that node: the kit projects them
        src, dst, weight, relation, time, typed = _project_types(edges_file, edges, index, every, others, kind,
                                                                 src, dst, weight, relation, time, issues)
        events = typed if events is None else pd.concat([events, typed], ignore_index=True)
        events_file = events_file or edges_file
    if events is not None:
        _check_events(events_file, events, index, issues, others)
    if issues:
        raise DataValidationError(issues)
    arrays = [node_ids, features, labels, src, dst, weight, relation, time, *splits.values()]
    for a in arrays:
        if isinstance(a, np.ndarray):
            a.setflags(write=False)
    return GenericGraph(name or path.name, node_ids, features, tuple(names), labels, splits,
                        src, dst, weight, relation, time, events, path, kind,
                        0 if others is None else len(others))


def canonical_order(graph: GenericGraph, *, rounds: int = 2) -> np.ndarray:
    """An order of the nodes that depends on their content and position, never on file order or id values.

    Each node gets a 64-bit hash of its label, split membership and features (rounded to 9 significant
    digits), refined ``rounds`` times by the multiset of its neighbours' hashes and edge weights
    (Weisfeiler-Lehman colour refinement). Nodes are ordered by hash; nodes with equal hashes, which these
    rounds cannot tell apart, keep their relative file order, and swapping them changes no feature, label or
    split, so a result computed in this order is the same for any permutation of the rows or renaming of
    the ids (:func:`fraudkit.evaluation.graphbench.run_benchmark` relies on it).

    Returns
    -------
    ndarray of shape (n_nodes,), int64
        ``graph.permuted(canonical_order(graph))`` is the canonical graph.

    Examples
    --------
    >>> g = GenericGraph("toy", np.array([7, 8, 9]), np.array([[1.0], [2.0], [1.0]]), ("x",), None,
    ...                  src=np.array([0]), dst=np.array([1]), weight=np.ones(1))
    >>> h = g.permuted([2, 1, 0])  # the same graph, rows reversed
    >>> g.node_ids[canonical_order(g)].tolist() == h.node_ids[canonical_order(h)].tolist()
    True
    """
    n = graph.n_nodes
    cols = {f"f{j}": round_significant(graph.features[:, j]) for j in range(graph.features.shape[1])}
    if graph.labels is not None:
        cols["label"] = graph.labels.astype(np.int64)
    for k in sorted(graph.splits):
        cols[k] = graph.splits[k].astype(np.int64)
    base = pd.DataFrame(cols, index=pd.RangeIndex(n)) if cols else pd.DataFrame(index=pd.RangeIndex(n))
    h = (pd.util.hash_pandas_object(base, index=False).to_numpy(np.uint64) if cols
         else np.zeros(n, dtype=np.uint64))
    a = graph.adjacency().tocoo()
    w = pd.util.hash_array(round_significant(a.data)).astype(np.uint64)
    with np.errstate(over="ignore"):
        for _ in range(rounds):
            msg = _mix(h[a.col] ^ w)
            acc = np.zeros(n, dtype=np.uint64)
            np.add.at(acc, a.row, msg)  # a sum mod 2**64: the neighbour multiset, in any order
            h = _mix(h * np.uint64(0x9E3779B97F4A7C15) + acc)
    return np.argsort(h, kind="stable")


def write_generic(out, nodes: pd.DataFrame, edges: pd.DataFrame, events: pd.DataFrame | None = None,
                  *, fmt: str = "parquet", validate: bool = True) -> Path:
    """Write a generic graph-fraud folder atomically (the folder is replaced as a whole).

    Parameters
    ----------
    out : str or Path
        Target folder; replaced only when every file is written (and valid).
    nodes, edges, events : DataFrame
        Tables in the generic format; ``edges`` may be empty but needs ``src``
        and ``dst`` columns.
    fmt : {"parquet", "csv"}, default="parquet"
    validate : bool, default=True
        Re-read the written folder with :func:`load_generic` before swapping
        it in, so an invalid folder never replaces a good one.

    Returns
    -------
    Path
        ``out``.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> d = tempfile.mkdtemp()
    >>> p = write_generic(d, pd.DataFrame({"id": [0, 1], "x": [1.0, 2.0]}),
    ...                   pd.DataFrame({"src": [0], "dst": [1]}), fmt="csv")
    >>> sorted(f.name for f in p.iterdir())
    ['edges.csv', 'nodes.csv']
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', got {fmt!r}")
    out = Path(out)
    with atomic_directory(out) as tmp:
        for stem, df in (("nodes", nodes), ("edges", edges), ("events", events)):
            if df is None:
                continue
            if fmt == "parquet":
                df.to_parquet(tmp / f"{stem}.parquet", index=False)
            else:
                df.to_csv(tmp / f"{stem}.csv", index=False)
        if validate:
            load_generic(tmp)
    return out


# --------------------------------------------------------------------------- private helpers


def _missing_ids(file, column, problem, values, bad, index, fix) -> ValidationIssue:
    """An unknown-id issue; says so when the ids differ only in their type (``1`` against ``'1'``)."""
    as_text = pd.Index(index.astype(str))
    typed = as_text.get_indexer(values[bad].astype(str)) >= 0
    if typed.all():
        return ValidationIssue(file, column, f"{problem}: id type mismatch ({column} is {_id_kind(values)}, "
                               f"nodes.id is {_id_kind(index)})", _show(values[bad].iloc[0]),
                               "write the ids with one type in every file (e.g. all as integers, or all as text)",
                               int(bad.sum()))
    return ValidationIssue(file, column, problem, _show(values[bad].iloc[0]), fix, int(bad.sum()))


def _id_kind(a) -> str:
    return "text" if pd.api.types.is_object_dtype(a) or pd.api.types.is_string_dtype(a) else str(a.dtype)


def _mix(h: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: spreads the bits of 64-bit hashes."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def _show(value) -> str:
    """An example value as text, without numpy's type wrapper."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _read_table(folder: Path, stem: str, issues: list, *, required: bool):
    found = [folder / f"{stem}{s}" for s in _SUFFIXES if (folder / f"{stem}{s}").exists()]
    if not found:
        if required:
            issues.append(ValidationIssue(f"{folder}/{stem}", None, "file not found", None,
                                          f"write {stem}.parquet or {stem}.csv (see docs/generic-format.md)"))
        return None, None
    if len(found) > 1:
        issues.append(ValidationIssue(found[0].name, None, "table given twice", ", ".join(f.name for f in found),
                                      f"keep one of {stem}.parquet and {stem}.csv"))
    f = found[0]
    try:
        df = pd.read_parquet(f) if f.suffix == ".parquet" else pd.read_csv(f)
    except Exception as e:  # the reader's own message says what is unreadable
        issues.append(ValidationIssue(f.name, None, "cannot be read", str(e)[:200],
                                      "rewrite the file as valid Parquet or comma-separated CSV with a header"))
        return f.name, None
    return f.name, df


def _check_nodes(file, nodes, issues):
    if NODE_ID not in nodes.columns:
        issues.append(ValidationIssue(file, NODE_ID, "missing column", None,
                                      "add an 'id' column with one unique key per node"))
        return None, None, [], None, {}
    ids = nodes[NODE_ID]
    dup = ids.duplicated(keep=False)
    if dup.any():
        issues.append(ValidationIssue(file, NODE_ID, "duplicate node id", _show(ids[dup].iloc[0]),
                                      "keep one row per node (aggregate or drop the repeats)", int(dup.sum())))
    if ids.isna().any():
        issues.append(ValidationIssue(file, NODE_ID, "missing node id", None,
                                      "give every node an id", int(ids.isna().sum())))
    labels = None
    if LABEL in nodes.columns:
        lab = pd.to_numeric(nodes[LABEL], errors="coerce")
        bad = lab.isna() | ~lab.isin([-1, 0, 1])
        plus_minus = not bad.any() and lab.isin([-1, 1]).all() and (lab == -1).any() and (lab == 1).any()
        if plus_minus:
            # -1/+1 passes the range check but means "no honest node": the benchmark would fail later
            issues.append(ValidationIssue(file, LABEL, "labels look encoded as -1/+1 (no 0)", _show(-1),
                                          "write 0 for honest (map -1 -> 0, keep 1 for fraud); -1 means unknown "
                                          "here", int((lab == -1).sum())))
        elif bad.any():
            issues.append(ValidationIssue(file, LABEL, "label outside {-1, 0, 1}", _show(nodes[LABEL][bad].iloc[0]),
                                          "use 1 for fraud, 0 for honest and -1 for unknown", int(bad.sum())))
        if not bad.any() and not plus_minus:
            labels = lab.to_numpy(dtype=np.int8)
    split_cols = [c for c in nodes.columns if _SPLIT_RE.match(str(c))]
    splits = {}
    for c in split_cols:
        col = nodes[c]
        if col.dtype == bool:
            splits[c] = col.to_numpy()
        elif pd.api.types.is_numeric_dtype(col) and col.isin([0, 1]).all():
            splits[c] = col.to_numpy().astype(bool)
        else:
            bad = ~col.isin([0, 1, True, False])
            issues.append(ValidationIssue(file, c, "split column is not boolean", _show(col[bad].iloc[0]),
                                          "use true/false (or 1/0) for membership in the split", int(bad.sum())))
    ks = sorted({int(_SPLIT_RE.match(c).group(2)) for c in splits})
    for k in ks:
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            ca, cb = f"{a}_{k}", f"{b}_{k}"
            if ca in splits and cb in splits:
                both = splits[ca] & splits[cb]
                if both.any():
                    issues.append(ValidationIssue(file, f"{ca}, {cb}", "split masks overlap",
                                                  _show(ids[both].iloc[0]),
                                                  f"put each node in at most one of {ca}/{cb}", int(both.sum())))
        if labels is not None:
            for s in SPLIT_KINDS:
                c = f"{s}_{k}"
                unl = splits.get(c, np.zeros(len(nodes), bool)) & (labels == -1)
                if unl.any():
                    issues.append(ValidationIssue(file, c, "split contains nodes with unknown label (-1)",
                                                  _show(ids[unl].iloc[0]),
                                                  "leave unlabelled nodes out of every split", int(unl.sum())))
    names = [c for c in nodes.columns if c not in (NODE_ID, LABEL, NODE_TYPE) and c not in split_cols]
    cols = []
    for c in names:
        col = nodes[c]
        if col.dtype == bool:
            col = col.astype(float)
        if not pd.api.types.is_numeric_dtype(col):
            num = pd.to_numeric(col, errors="coerce")
            bad = num.isna() & col.notna()
            issues.append(ValidationIssue(file, str(c), "non-numeric feature", _show(col[bad].iloc[0]) if bad.any()
                                          else _show(col.iloc[0]),
                                          "one-hot encode categories (one 0/1 column per value) or drop the column",
                                          int(bad.sum())))
            continue
        vals = col.to_numpy(dtype=np.float64)
        nan = ~np.isfinite(vals)
        if nan.any():
            issues.append(ValidationIssue(file, str(c), "missing or infinite feature values",
                                          _show(ids[nan].iloc[0]),
                                          "fill them (e.g. with the column median) and add a 0/1 "
                                          f"'{c}_missing' column so the gap stays visible", int(nan.sum())))
        cols.append(vals)
    features = np.column_stack(cols) if cols else np.zeros((len(nodes), 0))
    return ids.to_numpy(), features, [str(c) for c in names], labels, splits


def _check_edges(file, edges, index, issues):
    empty = np.zeros(0, dtype=np.int64)
    missing = [c for c in ("src", "dst") if c not in edges.columns]
    for c in missing:
        issues.append(ValidationIssue(file, c, "missing column", None,
                                      "edges need 'src' and 'dst' node-id columns (an empty table is fine)"))
    if missing or index is None:
        return empty, empty, np.zeros(0), None, None
    ends = []
    for c in ("src", "dst"):
        pos = index.get_indexer(edges[c]) if len(edges) else empty
        bad = pos < 0
        if bad.any():
            issues.append(_missing_ids(file, c, "edge endpoint not in nodes", edges[c], bad, index,
                                       "add the node to nodes or drop the edge"))
        ends.append(np.asarray(pos, dtype=np.int64))
    weight = np.ones(len(edges))
    if "weight" in edges.columns:
        w = pd.to_numeric(edges["weight"], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(w) | (w == 0)
        if bad.any():
            issues.append(ValidationIssue(file, "weight", "weight missing, non-numeric or zero",
                                          _show(edges["weight"][bad].iloc[0]),
                                          "use non-zero numbers: positive for ties, negative for signed edges "
                                          "(distrust, a bad rating); drop zero-weight edges", int(bad.sum())))
        weight = w
    relation = edges["relation"].astype(str).to_numpy() if "relation" in edges.columns else None
    time = edges["time"].to_numpy() if "time" in edges.columns else None
    return ends[0], ends[1], weight, relation, time


def _check_events(file, events, index, issues, others=None):
    for c in ("account", "target"):
        if c not in events.columns:
            issues.append(ValidationIssue(file, c, "missing column", None,
                                          f"events need {', '.join(EVENT_COLUMNS)} (time and action optional)"))
    if "account" in events.columns and index is not None:
        bad = index.get_indexer(events["account"]) < 0
        if others is not None and bad.any():
            typed = bad & events["account"].isin(others[NODE_ID]).to_numpy()
            if typed.any():
                issues.append(ValidationIssue(file, "account", "event account is not of the scored type",
                                              _show(events["account"][typed].iloc[0]),
                                              "give events to nodes of the scored type only (the others are "
                                              "targets)", int(typed.sum())))
                bad = bad & ~typed
        if bad.any():
            issues.append(_missing_ids(file, "account", "event account not in nodes", events["account"], bad, index,
                                       "add the account to nodes or drop its events"))


def _split_types(file, nodes, scored_type, issues):
    """Split typed nodes into the scored type's rows and the others; name the scored type.

    The scored type is ``scored_type`` when given, else the one type with labels (1 or 0), else the only
    type. Returns ``(scored rows, other rows, scored type)``; ``other rows`` keep ``id`` and ``type``.
    """
    kind = nodes[NODE_TYPE]
    missing = kind.isna() | (kind.astype(str).str.strip() == "")
    if missing.any():
        issues.append(ValidationIssue(file, NODE_TYPE, "missing node type", _show(nodes[NODE_ID][missing].iloc[0]),
                                      "give every node a type (e.g. 'user', 'product')", int(missing.sum())))
    kind = kind.astype(str)
    types = sorted(set(kind[~missing]))
    lab = pd.to_numeric(nodes[LABEL], errors="coerce") if LABEL in nodes.columns else pd.Series(np.nan, nodes.index)
    labelled = sorted(set(kind[lab.isin([0, 1]) & ~missing]))
    if scored_type is not None:
        scored_type = str(scored_type)
        if scored_type not in types:
            issues.append(ValidationIssue(file, NODE_TYPE, "unknown scored type", repr(scored_type),
                                          f"choose one of the node types {types}"))
            scored_type = None
        else:
            wrong = lab.isin([0, 1]) & (kind != scored_type) & ~missing
            if wrong.any():
                issues.append(ValidationIssue(
                    file, LABEL, f"labels on nodes of a non-scored type (scored type {scored_type!r})",
                    _show(nodes[NODE_ID][wrong].iloc[0]),
                    f"label only '{scored_type}' nodes; leave the label of the others empty or -1",
                    int(wrong.sum())))
    elif len(labelled) == 1:
        scored_type = labelled[0]
    elif len(types) == 1:
        scored_type = types[0]
    else:
        why = f"labels on types {labelled}" if labelled else f"no labels and types {types}"
        issues.append(ValidationIssue(
            file, NODE_TYPE, f"ambiguous scored type ({why})",
            _show(nodes[NODE_ID][kind == (labelled or types)[1]].iloc[0]),
            "label nodes of one type only (leave the others' label empty or -1), or pass scored_type= to "
            "load_generic"))
    if scored_type is None:
        return nodes, None, None
    mine = (kind == scored_type).to_numpy()
    other = nodes.loc[~mine, [NODE_ID, NODE_TYPE]].reset_index(drop=True)
    for c in nodes.columns:
        if _SPLIT_RE.match(str(c)):
            inside = ~mine & nodes[c].isin([1, True]).to_numpy()
            if inside.any():
                issues.append(ValidationIssue(file, c, f"split holds nodes of a non-scored type ({scored_type!r} "
                                              "is scored)", _show(nodes[NODE_ID][inside].iloc[0]),
                                              f"put only '{scored_type}' nodes in splits", int(inside.sum())))
    dup = nodes[NODE_ID].duplicated(keep=False).to_numpy() & ~mine
    if dup.any():
        issues.append(ValidationIssue(file, NODE_ID, "duplicate node id across types",
                                      _show(nodes[NODE_ID][dup].iloc[0]),
                                      "give every node a unique id, whatever its type (e.g. prefix product ids)",
                                      int(dup.sum())))
    mine_rows = nodes[mine].reset_index(drop=True)
    # columns empty on every scored node belong to the other types (a product's price): not features here
    empty = [c for c in mine_rows.columns if c not in (NODE_ID, LABEL, NODE_TYPE) and not _SPLIT_RE.match(str(c))
             and mine_rows[c].isna().all() and len(mine_rows)]
    return mine_rows.drop(columns=empty), other, scored_type


def _project_types(file, edges, index, every, others, kind, src, dst, weight, relation, time, issues):
    """Keep the edges between scored nodes; turn scored-to-other edges into events; refuse other-to-other."""
    n = len(index)
    s_in, d_in = src < n, dst < n
    both = s_in & d_in
    neither = ~s_in & ~d_in
    if neither.any():
        issues.append(ValidationIssue(file, "src, dst", f"edge between two nodes that are not of the scored type "
                                      f"({kind!r})", _show(edges["src"].iloc[int(np.flatnonzero(neither)[0])]),
                                      f"every edge needs a '{kind}' endpoint (the kit projects the other types "
                                      "through them); drop the others", int(neither.sum())))
    mixed = ~both & ~neither
    account = np.where(s_in, src, dst)[mixed]
    target = np.where(s_in, dst, src)[mixed]
    ev = pd.DataFrame({"account": index[account], "target": every[target].astype(str)})
    if time is not None:
        ev["time"] = time[mixed]
    if relation is not None:
        ev["action"] = relation[mixed]
    pick = (lambda a: None if a is None else a[both])
    return src[both], dst[both], weight[both], pick(relation), pick(time), ev
