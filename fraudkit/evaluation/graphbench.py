"""GADBench-style benchmark of graph fraud detectors on a generic graph-fraud folder.

Protocols follow GADBench (Tang et al., "GADBench: Revisiting and Benchmarking
Supervised Graph Anomaly Detection", NeurIPS 2023):

``full``
    The data's own splits ``train_k / val_k / test_k`` (trial ``k``); when the
    data has none, a stratified 50/25/25 split drawn with seed ``seed + k``.
``semi``
    20 fraud + 80 honest training nodes, another 20 + 80 for validation, the
    rest of the labelled nodes for testing; drawn with seed ``seed + k``.
``unsupervised``
    No labels are used to fit; scores are evaluated on the ``full`` protocol's
    test sets, so the figures sit beside the supervised ones on the same nodes.
    Where labelled nodes exist outside the test set, each score's direction is
    checked on them and a score that ranks them the wrong way round is flipped
    and said so in ``note`` (never silently used); ``best_single_feature``, the
    plain baseline, chooses its feature there too.

Results never depend on the order of the rows or the values of the ids: the
benchmark works on the graph in :func:`fraudkit.data.generic.canonical_order`.

Metrics per trial on the test nodes: AUROC, AUPRC (average precision) and
Rec@K with K = number of fraud nodes in the test set. Model selection (grids,
early stopping, ensemble members) uses the validation nodes only; test labels
are read once, by the metric.

Every method is a function ``method(bench, split, seed, previous) -> scores``
(``scores`` over all nodes, higher = riskier; ``previous`` holds the scores of
the methods already run in this trial, which only the ensemble reads).
Label-free inputs (neighbour aggregates, structural features, communities) are
computed once per data set and shared across trials; their time is charged to
the first method that needs them.
"""

from __future__ import annotations

__all__ = [
    "run_benchmark",
    "make_splits",
    "evaluate_scores",
    "format_table",
    "METHODS",
    "RESULT_COLUMNS",
    "Split",
    "MethodUnavailable",
    "TooFewLabels",
    "BASELINES",
]

import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fraudkit.capability.neighbors import aggregate_neighbors, neighbor_label_features, structural_features
from fraudkit.data.atomic import atomic_path
from fraudkit.data.generic import GenericGraph, canonical_order, load_generic
from fraudkit.errors import FraudkitError
from fraudkit.evaluation.metrics import neutralise_formulas
from fraudkit.identification.graph.communities import detect_communities
from fraudkit.identification.graph.dense import block_scores
from fraudkit.identification.graph.dense import fraudar as _fraudar
from fraudkit.identification.graph.propagation import label_propagation, personalized_pagerank
from fraudkit.randomness import check_random_state

RESULT_COLUMNS = ("dataset", "protocol", "method", "auroc_mean", "auroc_std", "auprc_mean", "auprc_std",
                  "rec_at_k_mean", "rec_at_k_std", "trials", "seconds", "note")
"""Columns of the summary table.

``seconds`` is the mean CPU time per trial of this process (one thread by
default), which on a shared machine is steadier than wall time.
"""

PROTOCOLS = ("full", "semi", "unsupervised")
_SEMI_SIZES = (20, 80)  # fraud, honest per training (and validation) set


class MethodUnavailable(FraudkitError):
    """A method's building block is missing (e.g. a module not installed); the row says why."""


class TooFewLabels(FraudkitError, ValueError):
    """A data set has too few labelled nodes of a class for a protocol; the message says how many and what to do."""


@dataclass(frozen=True)
class Split:
    """One trial's node sets (boolean masks over all nodes) and its number."""

    trial: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def run_benchmark(data, *, protocol: str = "full", trials: int = 10, out=None, methods=None,
                  seed: int = 0, n_jobs: int = 1, progress: bool = False) -> pd.DataFrame:
    """Run the benchmark and return one summary row per method.

    Parameters
    ----------
    data : str, Path or GenericGraph
        A generic graph-fraud folder (see :func:`fraudkit.data.generic.load_generic`).
    protocol : {"full", "semi", "unsupervised"}, default="full"
    trials : int, default=10
    out : str or Path, optional
        Write the per-trial results (one row per method and trial) to this CSV, atomically.
    methods : list of str, optional
        Subset of :data:`METHODS` valid for ``protocol`` (default: all of them).
    seed : int, default=0
        Base seed; trial ``k`` uses ``seed + k`` for its split and its models.
    n_jobs : int, default=1
        Threads for the tree models (OpenMP and joblib). One thread is the
        default because on a shared machine OpenMP's busy-waiting threads can
        run ten times slower than a single one.
    progress : bool, default=False
        Print one line per method and trial.

    Returns
    -------
    DataFrame
        Columns :data:`RESULT_COLUMNS`; metrics are mean and sample std over
        trials; a method whose building block is missing has NaN metrics,
        ``trials = 0`` and the reason in ``note``. The per-trial table goes
        to ``out``.

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd
    >>> from fraudkit.data.generic import write_generic
    >>> rng = np.random.default_rng(0)
    >>> y = (rng.random(400) < 0.2).astype(int)
    >>> nodes = pd.DataFrame({"id": range(400), "x": y + rng.normal(size=400), "label": y})
    >>> edges = pd.DataFrame({"src": rng.integers(0, 400, 800), "dst": rng.integers(0, 400, 800)})
    >>> d = write_generic(tempfile.mkdtemp() + "/toy", nodes, edges)
    >>> t = run_benchmark(d, protocol="full", trials=2, methods=["features_gbm"])
    >>> t[["method", "trials"]].values.tolist()
    [['features_gbm', 2]]
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    graph = data if isinstance(data, GenericGraph) else load_generic(data)
    if graph.labels is None:
        raise FraudkitError(f"{graph.name}: nodes have no 'label' column; the benchmark needs labels to score")
    valid = [m for m, spec in METHODS.items() if protocol in spec[1]]
    names = valid if methods is None else [m.strip() for m in methods if m.strip()]
    bad = [m for m in names if m not in valid]
    if bad:
        raise ValueError(f"method(s) {bad} not available for protocol {protocol!r}; choose from {valid}")
    from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: F401
    from threadpoolctl import threadpool_limits

    # threadpool_limits only reaches libraries already loaded: the import above loads
    # scikit-learn's OpenMP runtime first, else boosting would run unlimited threads
    # every method sees the nodes in their canonical order: results never depend on row order or id values
    graph = graph.permuted(canonical_order(graph))
    bench = _Bench(graph, n_jobs=n_jobs)
    splits = make_splits(graph, protocol=protocol, trials=trials, seed=seed)
    with threadpool_limits(limits=n_jobs):
        per_trial, notes = _run_trials(bench, splits, names, protocol, seed, progress)
    if out is not None:
        with atomic_path(out) as tmp:
            neutralise_formulas(per_trial).to_csv(tmp, index=False)
    return _summarise(per_trial, graph.name, protocol, names, notes)


def make_splits(graph: GenericGraph, *, protocol: str = "full", trials: int = 10, seed: int = 0) -> list:
    """The trials' train / validation / test masks for ``protocol``.

    Parameters
    ----------
    graph : GenericGraph
    protocol : {"full", "semi", "unsupervised"}
    trials : int
    seed : int
        Trial ``k`` draws with seed ``seed + k``.

    Returns
    -------
    list of Split

    Examples
    --------
    >>> g = GenericGraph("toy", np.arange(1000), np.zeros((1000, 1)), ("x",),
    ...                  (np.arange(1000) % 5 == 0).astype(np.int8))
    >>> s = make_splits(g, protocol="semi", trials=1)[0]
    >>> int(s.train.sum()), int(g.labels[s.train].sum()), int(s.test.sum())
    (100, 20, 800)
    """
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    y = graph.labels
    labelled = y >= 0
    order = None if (protocol != "semi" and graph.split_ids) else canonical_order(graph)
    if protocol in ("full", "unsupervised"):
        have = graph.split_ids
        if have:
            if trials > len(have):
                raise ValueError(f"{graph.name} has {len(have)} splits; ask for at most {len(have)} trials")
            out = [Split(k, *graph.split(k)) for k in have[:trials]]
        else:
            out = [_stratified(y, labelled, k, seed + k, order) for k in range(trials)]
        if protocol == "unsupervised":
            none = np.zeros(len(y), dtype=bool)
            out = [Split(s.trial, none, none, s.test) for s in out]
        return out
    if protocol != "semi":
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    pos, neg = order[y[order] == 1], order[y[order] == 0]  # drawn in canonical order, never file order
    n_pos, n_neg = _SEMI_SIZES
    if len(pos) < 3 * n_pos or len(neg) < 3 * n_neg:
        raise TooFewLabels(f"{graph.name}: the semi protocol needs at least {3 * n_pos} fraud and {3 * n_neg} honest "
                           f"labelled nodes ({n_pos} + {n_neg} to train, as many to validate, the rest to test); "
                           f"it has {len(pos)} fraud and {len(neg)} honest. Fix: run --protocol full or unsupervised, "
                           "or label more nodes")
    out = []
    for k in range(trials):
        rng = check_random_state(seed + k)
        p, q = rng.permutation(pos), rng.permutation(neg)
        train = _mask(len(y), p[:n_pos], q[:n_neg])
        val = _mask(len(y), p[n_pos:2 * n_pos], q[n_neg:2 * n_neg])
        out.append(Split(k, train, val, labelled & ~train & ~val))
    return out


def evaluate_scores(y_true, scores) -> dict:
    """AUROC, AUPRC and Rec@K (K = number of positives) of ``scores`` against ``y_true``.

    Examples
    --------
    >>> evaluate_scores([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    {'auroc': 0.75, 'auprc': 0.8333333333333333, 'rec_at_k': 0.5}
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=float)
    if len(np.unique(y)) < 2:
        raise TooFewLabels(f"the test set needs both fraud and honest nodes; it has {len(y)} node(s), all labelled "
                           f"{int(y[0]) if len(y) else 'nothing'}. Fix: check the label encoding (1 fraud, 0 honest, "
                           "-1 unknown) and that every split holds both classes")
    k = int(y.sum())
    top = np.argsort(-s, kind="stable")[:k]
    return {"auroc": float(roc_auc_score(y, s)), "auprc": float(average_precision_score(y, s)),
            "rec_at_k": float(y[top].sum() / k)}


def format_table(table: pd.DataFrame, *, digits: int = 2) -> str:
    """A Markdown table of a summary (metrics x100 as ``mean ± std``), without extra dependencies.

    Examples
    --------
    >>> t = pd.DataFrame([{"dataset": "d", "protocol": "full", "method": "m", "auroc_mean": 0.9,
    ...     "auroc_std": 0.01, "auprc_mean": 0.5, "auprc_std": 0.02, "rec_at_k_mean": 0.4,
    ...     "rec_at_k_std": 0.0, "trials": 3, "seconds": 1.5, "note": ""}])
    >>> print(format_table(t).splitlines()[2])
    | d | full | m | 90.00 ± 1.00 | 50.00 ± 2.00 | 40.00 ± 0.00 | 3 | 1.5 |  |
    """
    head = ["dataset", "protocol", "method", "AUROC", "AUPRC", "Rec@K", "trials", "s/trial", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table.itertuples(index=False):
        def pm(m, s):
            return "—" if pd.isna(m) else f"{100 * m:.{digits}f} ± {100 * (0 if pd.isna(s) else s):.{digits}f}"
        cells = [r.dataset, r.protocol, r.method, pm(r.auroc_mean, r.auroc_std), pm(r.auprc_mean, r.auprc_std),
                 pm(r.rec_at_k_mean, r.rec_at_k_std), str(r.trials),
                 "—" if pd.isna(r.seconds) else f"{r.seconds:.1f}", getattr(r, "note", "") or ""]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- shared inputs


class _Bench:
    """Label-free inputs of one graph, computed on first use and shared by all trials."""

    def __init__(self, graph: GenericGraph, n_jobs: int = 1):
        self.graph = graph
        self.n_jobs = n_jobs
        self.y = graph.labels.astype(int)
        self.note = ""
        self._cache: dict = {}
        parts = [graph.features]
        if graph.events is not None and len(graph.events):
            # events become per-node activity features: log events, log distinct targets, top-target share
            act = _activity(self)
            parts.append(np.column_stack([np.log1p(act[:, 0]), np.log1p(act[:, 1]), act[:, 2]]))
        if (graph.weight < 0).any():
            # signed edges become features too: the models see the sign that adjacency() drops
            parts.append(_signed_features(graph))
        self.x = np.hstack(parts)
        if self.x.shape[1] == 0:
            if not self.has_edges:
                raise FraudkitError(f"{graph.name}: the nodes have no feature column and there are no edges: "
                                    "nothing to score. Fix: add numeric feature columns to nodes or edges between "
                                    "them (see docs/generic-format.md)")
            # a featureless folder runs on structure alone: the structural features stand in as own features
            self.x = self.structure()
            self.note = "no feature columns: structural features used as own features"
        self.raw = graph.features if graph.features.shape[1] else self.x

    def get(self, key, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    @property
    def adj(self) -> sp.csr_matrix:
        """The edges (signs dropped, relations merged) plus the co-event projection of the events, if any."""
        def build():
            a = self.graph.adjacency()
            if self.graph.events is not None and len(self.graph.events):
                a = (a + self.graph.event_projection()).tocsr()
            a.sort_indices()  # methods that read the entries in storage order (communities) see one order
            return a
        return self.get("adj", build)

    @property
    def has_edges(self) -> bool:
        return self.adj.nnz > 0

    def neighbor_block(self) -> np.ndarray:
        """Own features, neighbour aggregates and structural features (label-free), for the tree models.

        1- and 2-hop mean / std / max / min / sum of the features, the 3-hop
        mean, structural features (degree, core number, PageRank, clustering,
        mean neighbour degree) and their 1-hop mean and max.
        """
        def build():
            if not self.has_edges:
                return self.x
            agg = aggregate_neighbors(self.adj, self.x, hops=2, stats=("mean", "std", "max", "min", "sum"))
            st = self.structure()
            st_agg = aggregate_neighbors(self.adj, st, hops=1, stats=("mean", "max"))
            return np.hstack([self.x, agg.to_numpy(), self.hop_means()[:, -self.x.shape[1]:], st,
                              st_agg.to_numpy()])
        return self.get("neighbor_block", build)

    def own_block(self) -> np.ndarray:
        """Own features plus ``log(1 + a) - log(1 + b)`` for every pair of count columns (label-free).

        Count columns are the features with non-negative whole values and more than two distinct values
        (followers, posts, reviews), the first :data:`_MAX_COUNT_COLUMNS` of them in column order.
        """
        def build():
            x = self.x
            cnt = [j for j in range(x.shape[1]) if (x[:, j] >= 0).all() and len(np.unique(x[:, j])) > 2
                   and np.array_equal(x[:, j], np.round(x[:, j]))][:_MAX_COUNT_COLUMNS]
            lx = np.log1p(x[:, cnt])
            ratios = [lx[:, a] - lx[:, b] for a in range(len(cnt)) for b in range(a + 1, len(cnt))]
            return np.column_stack([x, *ratios]) if ratios else x
        return self.get("own_block", build)

    def linear_block(self) -> np.ndarray:
        """Standardised own features, 1/2/3-hop neighbour means and structural features, for linear models.

        A compact block (no std/max/min/sum): with 100 training labels the
        linear model needs few, smooth columns. Standardised over all nodes,
        which uses no labels.
        """
        def build():
            parts = [self.x] if not self.has_edges else [self.x, self.hop_means(), self.structure()]
            z = np.hstack(parts)
            sd = z.std(axis=0)
            return (z - z.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
        return self.get("linear_block", build)

    def hop_means(self) -> np.ndarray:
        """1-, 2- and 3-hop neighbour means of the features (random-walk averages)."""
        return self.get("hop_means", lambda: aggregate_neighbors(self.adj, self.x, hops=3,
                                                                  stats=("mean",)).to_numpy())

    def structure(self) -> np.ndarray:
        """Structural features: degree, core number, PageRank, clustering, mean neighbour degree."""
        return self.get("structure", lambda: structural_features(self.adj).to_numpy())

    def degree(self) -> np.ndarray:
        """Number of distinct neighbours of each node."""
        return self.get("degree", lambda: np.diff(self.adj.indptr).astype(float))

    def check_pool(self, split) -> np.ndarray:
        """Labelled nodes outside the test set: where unsupervised scores are checked (direction, choice)."""
        return (self.y >= 0) & ~split.test

    def communities(self) -> np.ndarray:
        """Leiden community of each node (isolated nodes are singletons)."""
        def build():

            a = sp.triu(self.adj, k=1).tocoo()
            edges = pd.DataFrame({"src": a.row, "dst": a.col, "weight": a.data})
            part = detect_communities(edges, method="leiden", resolution=1.0, seed=0,
                                      nodes=np.arange(self.graph.n_nodes))
            member = np.empty(self.graph.n_nodes, dtype=np.int64)
            member[part.nodes.astype(np.int64)] = part.membership
            return member
        return self.get("communities", build)


# --------------------------------------------------------------------------- methods


def features_gbm(bench, split, seed, previous):
    """Gradient boosting on the node's own features only (with the activity features of its events, if any)."""
    return _gbm(bench.x, bench.y, split, seed)


def features_trees(bench, split, seed, previous):
    """Extremely randomised trees on own features plus log ratios of count columns (no graph).

    The kit's bagged member on the own-feature block (:meth:`_Bench.own_block`): on 100 training labels
    boosting is less steady than averaged randomised trees, and ratios such as followers per followee are
    what a tree cannot build from the two counts alone. Designed on InstaFake's semi splits with seeds
    100..109 and 200..209: 98.94 AUROC against 98.33 for the plain forest and 98.13 for boosting.
    """
    from sklearn.ensemble import ExtraTreesClassifier

    x = bench.own_block()
    m = ExtraTreesClassifier(n_estimators=300, min_samples_leaf=3, max_features="sqrt", n_jobs=bench.n_jobs,
                             random_state=seed).fit(x[split.train], bench.y[split.train])
    return m.predict_proba(x)[:, 1]


def neighbors_gbm(bench, split, seed, previous):
    """Gradient boosting on own features + 1/2-hop neighbour aggregates + structural features."""
    return _gbm(_need_edges(bench).neighbor_block(), bench.y, split, seed)


def neighbors_trees(bench, split, seed, previous):
    """Extremely randomised trees on the neighbour block (GADBench's RF-Graph family)."""
    from sklearn.ensemble import ExtraTreesClassifier

    x = _need_edges(bench).neighbor_block()
    m = ExtraTreesClassifier(n_estimators=200, min_samples_leaf=3, max_features=0.2, n_jobs=bench.n_jobs,
                             random_state=seed).fit(x[split.train], bench.y[split.train])
    return m.predict_proba(x)[:, 1]


def features_forest(bench, split, seed, previous):
    """Random forest on the folder's node features as given: the plain supervised baseline to match."""
    return _forest(bench.raw, bench.y, split, seed, bench.n_jobs)


def neighbors_forest(bench, split, seed, previous):
    """Random forest on the neighbour block: steadier than boosting on 100 training labels (``semi``)."""
    return _forest(_need_edges(bench).neighbor_block(), bench.y, split, seed, bench.n_jobs)


def propagation(bench, split, seed, previous):
    """Personalised PageRank from training fraud against training honest nodes (no model).

    The score is ``log ppr_fraud - log ppr_honest``: how much closer a node is,
    by random walks with restart, to the known fraud than to the known honest
    nodes. The restart ``alpha`` (0.85 or 0.95) is chosen on validation AUROC.
    Label propagation with honest nodes as negative seeds (Zhou et al.) was
    dropped: on Tolokers' semi development splits (seeds 100..109) it scored
    about 0.55 AUROC against 0.70 for this ratio.
    """
    a = _need_edges(bench).adj
    best = None
    for alpha in (0.85, 0.95):
        best = _keep_best(best, _ppr_ratio(a, bench.y, split.train, alpha), bench.y, split)
    return best[1]


def signed_propagation(bench, split, seed, previous):
    """Label propagation over signed edges: trust carries a label, distrust carries its opposite.

    Training fraud start at +1 and training honest at -1; ``f <- alpha S f + (1 - alpha) f0`` with
    ``S = D^-1/2 (A+ - A-) D^-1/2`` and ``D`` the absolute degrees: the iteration of Zhou et al. (NIPS 2003)
    on the signed Laplacian of Kunegis et al. ("Spectral analysis of signed graphs", WWW 2010). A node rated
    down by known honest nodes moves towards fraud; one trusted by them towards honest. ``alpha`` (0.5 or
    0.9) is chosen on validation AUROC. Needs negative edge weights.
    """
    g = _need_edges(bench).graph
    if not (g.weight < 0).any():
        raise MethodUnavailable(f"{g.name} has no negative edge weights (no signed edges)")
    s = bench.get("signed_operator", lambda: _signed_operator(g))
    f0 = np.where(split.train, np.where(bench.y == 1, 1.0, -1.0), 0.0)
    best = None
    for alpha in (0.5, 0.9):
        f = f0.copy()
        for _ in range(200):
            nxt = alpha * (s @ f) + (1 - alpha) * f0
            done = np.abs(nxt - f).max() < 1e-10
            f = nxt
            if done:
                break
        best = _keep_best(best, f, bench.y, split)
    return best[1]


def neighbors_relations_gbm(bench, split, seed, previous):
    """Neighbour block + per-relation log degree and 1-hop mean / max of own features, boosted.

    With several relations (a shared device against a follow), the merged adjacency averages a telling
    relation with a noisy one; these columns keep each relation apart. Needs two relations or more.
    """
    b = _need_edges(bench)
    rel = b.graph.relation
    kinds = [] if rel is None else sorted(set(rel.tolist()))
    if len(kinds) < 2:
        raise MethodUnavailable(f"{b.graph.name} has {len(kinds)} edge relation(s); this needs two or more")

    def build():
        parts = [b.neighbor_block()]
        for r in kinds:
            a = b.graph.adjacency(relation=r)
            agg = aggregate_neighbors(a, b.x, hops=1, stats=("mean", "max")).to_numpy()
            parts += [np.log1p(np.diff(a.indptr))[:, None], agg]
        return np.hstack(parts)
    return _gbm(b.get("relations_block", build), b.y, split, seed)


def neighbors_linear(bench, split, seed, previous):
    """L2 logistic regression on the compact linear block; ``C`` chosen on validation AUROC.

    Own features, 1/2/3-hop neighbour means and structural features,
    standardised (:meth:`_Bench.linear_block`). A low-variance model for the
    ``semi`` protocol, where 100 labels cannot fit 135 boosted columns well.
    """
    from sklearn.linear_model import LogisticRegression

    x = _need_edges(bench).linear_block()
    best = None
    for c in (0.01, 0.03, 0.1):
        m = LogisticRegression(C=c, max_iter=2000).fit(x[split.train], bench.y[split.train])
        best = _keep_best(best, m.decision_function(x), bench.y, split)
    return best[1]


def neighbors_labels_gbm(bench, split, seed, previous):
    """Neighbour block + training labels seen through the graph, never a node's own.

    Adds known fraud among 1- and 2-hop neighbours (leave-one-out by
    construction, :func:`fraudkit.capability.neighbors.neighbor_label_features`) and label
    propagation scores from training fraud / honest seeds, cross-fitted: a
    training node's score comes from seeds in the other folds.
    """
    b = _need_edges(bench)
    lab = neighbor_label_features(b.adj, b.y, split.train).to_numpy()
    lp, _ = _propagation_functions()

    def propagated(known):
        pos, neg = np.flatnonzero(known & (b.y == 1)), np.flatnonzero(known & (b.y == 0))
        return lp(b.adj, pos, alpha=0.5, negative_seeds=neg)[:, None]
    prop = _crossfit(split, seed, propagated)
    return _gbm(np.hstack([b.neighbor_block(), lab, prop]), b.y, split, seed)


def neighbors_community_gbm(bench, split, seed, previous):
    """Neighbour block + community size and cross-fitted training-fraud share of the community."""
    b = _need_edges(bench)
    return _gbm(np.hstack([b.neighbor_block(), _crossfit(split, seed, lambda k: _community_risk(b, k))]),
                b.y, split, seed)


def community_risk(bench, split, seed, previous):
    """Standalone: the smoothed training-fraud share of each node's community."""
    return _community_risk(_need_edges(bench), split.train)[:, 1]


def ensemble(bench, split, seed, previous, *, bags: int = 25, init: int = 3):
    """Bagged ensemble selection over the kit's methods run before it, on validation nodes only.

    The plain baseline (``features_forest``) is never a member: the ensemble is measured against it.

    Caruana et al. (ICML 2004; ICDM 2006): members are rank-normalised
    scores; on each of ``bags`` bootstrap samples of the validation nodes,
    forward selection with replacement starts from the ``init`` members best
    on that sample and adds the member that raises the sample's AUROC most,
    until none does. The weights are the members' shares averaged over the
    bags. Bagging and the sorted start keep a 100-node validation set (the
    ``semi`` protocol) from choosing noise; on 2,939 validation nodes it
    behaves like plain forward selection. Below 500 validation nodes even the
    bagged selection fell below its best member (semi: 94.95 against 95.58),
    so there the ensemble is the plain rank average of the members whose
    validation AUROC is within one standard error (Hanley & McNeil) of the best.
    """
    from scipy.stats import rankdata

    names = [k for k in previous if k not in BASELINES.values()]  # the plain baseline stays outside the kit
    if not names:
        raise MethodUnavailable("no other method ran in this trial")
    ranks = np.column_stack([rankdata(previous[k]) / len(previous[k]) for k in names])
    val = np.flatnonzero(split.val)
    if len(val) < _SMALL_VALIDATION:
        # forward selection over-fits 100 validation nodes (semi: 94.95 against its best member's 95.58):
        # the plain rank average of the members within one standard error of the best on validation
        yv = bench.y[val]
        auc = np.array([_auc(yv, ranks[val, j]) for j in range(len(names))])
        keep = auc >= auc.max() - _auc_standard_error(auc.max(), int((yv == 1).sum()), int((yv == 0).sum()))
        return ranks[:, keep].mean(axis=1)
    rng = check_random_state(seed)
    weights = np.zeros(len(names))
    for _ in range(bags):
        idx = rng.choice(val, size=len(val), replace=True)
        while len(np.unique(bench.y[idx])) < 2:
            idx = rng.choice(val, size=len(val), replace=True)
        yb, sb = bench.y[idx], ranks[idx]
        order = np.argsort([-_auc(yb, sb[:, j]) for j in range(len(names))], kind="stable")
        count = np.zeros(len(names))
        count[order[:init]] = 1
        best = _auc(yb, sb @ count)
        while True:  # forward selection with replacement
            gains = [_auc(yb, sb @ count + sb[:, j]) for j in range(len(names))]
            j = int(np.argmax(gains))
            if gains[j] <= best + 1e-5:
                break
            best, count[j] = gains[j], count[j] + 1
        weights += count / count.sum()
    return ranks @ (weights / bags)


def isolation_forest(bench, split, seed, previous):
    """Isolation forest on the node's own features (no labels)."""
    from sklearn.ensemble import IsolationForest

    m = IsolationForest(n_estimators=200, random_state=seed).fit(bench.x)
    return -m.score_samples(bench.x)


def isolation_forest_neighbors(bench, split, seed, previous):
    """Isolation forest on the neighbour block (own features, neighbour aggregates, structure): a named variant.

    On a 25-feature graph this scored 67.5 AUROC against 86.8 for the own-feature forest: hundreds of
    aggregate columns drown the few that matter, so it is not the default.
    """
    from sklearn.ensemble import IsolationForest

    x = _need_edges(bench).neighbor_block()
    m = IsolationForest(n_estimators=200, random_state=seed).fit(x)
    return -m.score_samples(x)


def low_degree(bench, split, seed, previous):
    """Fewer distinct neighbours, riskier: single-target and throw-away accounts (a label-free one-liner)."""
    return -np.log1p(_need_edges(bench).degree())


def low_activity(bench, split, seed, previous):
    """Fewer events and fewer distinct targets, riskier (from the ``events`` table; ties broken by targets)."""
    act = _activity(bench)
    return -(np.log1p(act[:, 0]) + 1e-3 * np.log1p(act[:, 1]))


def single_target(bench, split, seed, previous):
    """Share of a node's events on its most frequent target (1 = everything on one target)."""
    return _activity(bench)[:, 2]


def negative_share(bench, split, seed, previous):
    """Share of negative (signed) weight among the edges a node receives, smoothed: rated down by others.

    Needs signed edges (``weight < 0``, e.g. distrust or a bad rating). Directed as stored: ``src`` rates
    ``dst``.
    """
    g = bench.graph
    if not (g.weight < 0).any():
        raise MethodUnavailable(f"{g.name} has no negative edge weights (no signed edges)")
    return _signed_features(g)[:, 0]


def checked_best(bench, split, seed, previous):
    """The unsupervised pick where labels exist: the candidate that ranks labelled non-test nodes best.

    Candidates: every unsupervised method run before it in the trial (each already in its checked
    direction) and every own feature and log degree in either direction. The choice reads only labels
    outside the test set; with none, it is unavailable (no label to check a choice on).
    """
    pool = bench.check_pool(split)
    if len(np.unique(bench.y[pool])) < 2:
        raise MethodUnavailable("no labelled non-test nodes of both classes to check the choice on")
    cands = [np.asarray(v, dtype=float) for v in previous.values()] + _single_features(bench)
    best = None
    for c in cands:
        for sign in (1.0, -1.0):
            auc = _auc(bench.y[pool], sign * c[pool])
            if best is None or auc > best[0] + 1e-12:
                best = (auc, sign * c)
    return best[1]


def best_single_feature(bench, split, seed, previous):
    """Baseline: the one own feature (or log degree), in the direction that ranks best on labelled non-test nodes.

    The plain unsupervised baseline of ``benchmarks/real_data.md``: it reads the labels outside the test
    set to choose the feature and its sign, as the direction check of the other methods does.
    """
    pool = bench.check_pool(split)
    if len(np.unique(bench.y[pool])) < 2:
        raise MethodUnavailable("no labelled non-test nodes of both classes to choose the feature on")
    best = None
    for c in _single_features(bench):
        for sign in (1.0, -1.0):
            auc = _auc(bench.y[pool], sign * c[pool])
            if best is None or auc > best[0] + 1e-12:
                best = (auc, sign * c)
    return best[1]


def fraudar(bench, split, seed, previous):
    """FRAUDAR dense blocks on the adjacency: a node's score is the density of its densest block."""
    a = _need_edges(bench).adj
    blocks = bench.get("fraudar", lambda: _fraudar(a, max_blocks=10))
    return block_scores(blocks, a.shape[0])


def community_screening(bench, split, seed, previous):
    """Unsupervised: isolation forest over community profiles (size, density, mean features)."""
    from sklearn.ensemble import IsolationForest

    b = _need_edges(bench)
    member = b.communities()
    k = member.max() + 1
    size = np.bincount(member, minlength=k).astype(float)
    a = b.adj.tocoo()
    inside = member[a.row] == member[a.col]
    internal = np.bincount(member[a.row[inside]], minlength=k) / 2.0
    density = internal / np.maximum(size * (size - 1) / 2.0, 1.0)
    onehot = sp.csr_matrix((np.ones(len(member)), (member, np.arange(len(member)))), shape=(k, len(member)))
    mean = (onehot @ b.x) / size[:, None]
    prof = np.column_stack([np.log(size), density, mean])
    m = IsolationForest(n_estimators=200, random_state=seed).fit(prof, sample_weight=size)
    return -m.score_samples(prof)[member]


METHODS = {
    "features_gbm": (features_gbm, ("full", "semi")),
    "features_forest": (features_forest, ("full", "semi")),
    "features_trees": (features_trees, ("full", "semi")),
    "neighbors_gbm": (neighbors_gbm, ("full", "semi")),
    "neighbors_forest": (neighbors_forest, ("full", "semi")),
    "neighbors_trees": (neighbors_trees, ("full", "semi")),
    "neighbors_linear": (neighbors_linear, ("full", "semi")),
    "propagation": (propagation, ("full", "semi")),
    "signed_propagation": (signed_propagation, ("full", "semi")),
    "community_risk": (community_risk, ("full", "semi")),
    "neighbors_labels_gbm": (neighbors_labels_gbm, ("full", "semi")),
    "neighbors_community_gbm": (neighbors_community_gbm, ("full", "semi")),
    "neighbors_relations_gbm": (neighbors_relations_gbm, ("full", "semi")),
    "ensemble": (ensemble, ("full", "semi")),
    "isolation_forest": (isolation_forest, ("unsupervised",)),
    "isolation_forest_neighbors": (isolation_forest_neighbors, ("unsupervised",)),
    "low_degree": (low_degree, ("unsupervised",)),
    "low_activity": (low_activity, ("unsupervised",)),
    "single_target": (single_target, ("unsupervised",)),
    "negative_share": (negative_share, ("unsupervised",)),
    "fraudar": (fraudar, ("unsupervised",)),
    "community_screening": (community_screening, ("unsupervised",)),
    "checked_best": (checked_best, ("unsupervised",)),
    "best_single_feature": (best_single_feature, ("unsupervised",)),
}
"""name -> (function, protocols). Run in this order; the ensemble combines those run before it."""

BASELINES = {"full": "features_forest", "semi": "features_forest", "unsupervised": "best_single_feature"}
"""The plain baseline of each protocol, run on the same splits: the kit's best method must reach it."""

_MAX_COUNT_COLUMNS = 8  # count columns whose pairwise log ratios join the own-feature block (28 pairs at most)
_SMALL_VALIDATION = 500  # below this many validation nodes the ensemble averages its best members (1-SE rule)
_LABEL_CHOSEN = ("checked_best", "best_single_feature")  # unsupervised methods that read non-test labels by design


# --------------------------------------------------------------------------- private helpers


def _need_edges(bench: _Bench) -> _Bench:
    if not bench.has_edges:
        raise MethodUnavailable(f"{bench.graph.name} has no edges")
    return bench


def _propagation_functions():
    return label_propagation, personalized_pagerank


def _ppr_ratio(adj, y, known, alpha) -> np.ndarray:
    """``log ppr(fraud seeds) - log ppr(honest seeds)``, seeds among the ``known`` nodes."""
    _, ppr = _propagation_functions()
    pos, neg = np.flatnonzero(known & (y == 1)), np.flatnonzero(known & (y == 0))
    p, q = (ppr(adj, seeds, alpha=alpha, max_iter=2000) for seeds in (pos, neg))
    return np.log(p + 1e-15) - np.log(q + 1e-15)


def _community_risk(bench: _Bench, known: np.ndarray) -> np.ndarray:
    """Columns: log community size, smoothed share of fraud among the ``known`` nodes of the community."""
    member = bench.communities()
    k = member.max() + 1
    pos = np.bincount(member[known], weights=(bench.y[known] == 1).astype(float), minlength=k)
    cnt = np.bincount(member[known], minlength=k).astype(float)
    prior = (bench.y[known] == 1).mean()
    share = (pos + 2 * prior) / (cnt + 2)
    size = np.bincount(member, minlength=k)
    return np.column_stack([np.log(size[member]), share[member]])


def _crossfit(split: Split, seed: int, build, n_folds: int = 5) -> np.ndarray:
    """Label-derived features without self-leakage: out-of-fold rows for training nodes.

    ``build(known_mask) -> (n, c)`` computes features from the labels of
    ``known_mask``. A training node gets the features built from the other
    folds' training nodes; every other node gets the mean over the folds, so
    both see labels of the same number of training nodes. (Leave-one-out
    target encoding leaks: with the group total fixed, a node's own label is
    "total minus the leave-one-out value", which a tree model decodes.)
    """
    rng = check_random_state(seed)
    train = np.flatnonzero(split.train)
    fold = np.full(len(split.train), -1, dtype=np.int64)
    fold[rng.permutation(train)] = np.arange(len(train)) % n_folds
    out, acc = None, None
    for f in range(n_folds):
        held = split.train & (fold == f)
        feats = np.asarray(build(split.train & ~held), dtype=float)
        if out is None:
            out, acc = np.zeros_like(feats), np.zeros_like(feats)
        out[held] = feats[held]
        acc += feats
    rest = ~split.train
    out[rest] = acc[rest] / n_folds
    return out


def _gbm(x, y, split: Split, seed: int, *, bags: int = 2) -> np.ndarray:
    """Histogram gradient boosting, early-stopped on validation; a tiny grid chosen on validation AUROC.

    Each grid point averages ``bags`` models that differ in their seed and
    their random half of the features per split (``max_features=0.5``), which
    steadies the scores of these small data sets.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    n_train = int(split.train.sum())
    min_leaf = int(np.clip(n_train // 100, 2, 40))
    max_features = 0.5 if x.shape[1] >= 8 else 1.0
    best = None
    for leaves in (7, 31):
        scores = np.zeros(len(y))
        for b in range(bags):
            m = HistGradientBoostingClassifier(
                learning_rate=0.1, max_iter=300, max_leaf_nodes=leaves, min_samples_leaf=min_leaf,
                l2_regularization=1.0, max_features=max_features, early_stopping=True, n_iter_no_change=20,
                random_state=seed * 1000 + b)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                m.fit(x[split.train], y[split.train], X_val=x[split.val], y_val=y[split.val])
            scores += m.predict_proba(x)[:, 1] / bags
        best = _keep_best(best, scores, y, split)
    return best[1]


def _forest(x, y, split, seed, n_jobs) -> np.ndarray:
    """Random forest (300 trees, leaves of at least 3 nodes, sqrt features), fit on the training nodes."""
    from sklearn.ensemble import RandomForestClassifier

    m = RandomForestClassifier(n_estimators=300, min_samples_leaf=3, max_features="sqrt", n_jobs=n_jobs,
                               random_state=seed).fit(x[split.train], y[split.train])
    return m.predict_proba(x)[:, 1]


def _single_features(bench) -> list:
    """The folder's own features and, with edges, log degree: the one-liners every unsupervised score must beat."""
    cols = [bench.graph.features[:, j] for j in range(bench.graph.features.shape[1])]
    if bench.has_edges:
        cols.append(np.log1p(bench.degree()))
    return cols


def _signed_features(g) -> np.ndarray:
    """Per node, from the signed edges it receives: smoothed negative share, log negative and positive weight."""
    neg = np.bincount(g.dst, weights=(g.weight < 0) * np.abs(g.weight), minlength=g.n_nodes)
    tot = np.bincount(g.dst, weights=np.abs(g.weight), minlength=g.n_nodes)
    prior = neg.sum() / max(tot.sum(), 1e-12)
    return np.column_stack([(neg + prior) / (tot + 1.0), np.log1p(neg), np.log1p(tot - neg)])


def _signed_operator(g) -> sp.csr_matrix:
    """``D^-1/2 (A+ - A-) D^-1/2`` over the symmetrised signed edges, ``D`` the absolute degrees."""
    a = (g.adjacency(sign="positive") - g.adjacency(sign="negative")).tocsr()
    d = np.asarray(abs(a).sum(axis=1)).ravel()
    inv = np.where(d > 0, 1.0 / np.sqrt(np.maximum(d, 1e-300)), 0.0)
    return sp.diags(inv) @ a @ sp.diags(inv)


def _activity(bench) -> np.ndarray:
    """Per node: number of events, distinct targets, share of events on the top target (0 without events)."""
    def build():
        ev = bench.graph.events
        if ev is None or not len(ev):
            raise MethodUnavailable(f"{bench.graph.name} has no events table")
        node = pd.Index(bench.graph.node_ids).get_indexer(ev["account"])
        ev = pd.DataFrame({"node": node, "target": ev["target"].astype(str).to_numpy()})[node >= 0]
        per = ev.groupby(["node", "target"]).size()
        out = np.zeros((bench.graph.n_nodes, 3))
        n = per.groupby(level=0).sum()
        out[n.index, 0] = n.to_numpy()
        out[n.index, 1] = per.groupby(level=0).size().to_numpy()
        out[n.index, 2] = (per.groupby(level=0).max() / n).to_numpy()
        return out
    return bench.get("activity", build)


def _auc(y, s) -> float:
    """AUROC by the rank-sum (Mann-Whitney) formula; ties get average ranks, as in scikit-learn."""
    from scipy.stats import rankdata

    r = rankdata(s)
    pos = y == 1
    n1 = int(pos.sum())
    n0 = len(y) - n1
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _auc_standard_error(auc, n1, n0) -> float:
    """Hanley & McNeil (1982) standard error of an AUROC on ``n1`` positives and ``n0`` negatives."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    return float(np.sqrt(max(auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n0 - 1) * (q2 - auc**2), 0.0)
                         / max(n1 * n0, 1)))


def _keep_best(best, scores, y, split):
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(y[split.val], scores[split.val])
    return (auc, scores) if best is None or auc > best[0] else best


def _stratified(y, labelled, trial, seed, order) -> Split:
    rng = check_random_state(seed)
    train, val, test = (np.zeros(len(y), dtype=bool) for _ in range(3))
    for cls in (0, 1):
        idx = rng.permutation(order[labelled[order] & (y[order] == cls)])
        a, b = int(round(0.5 * len(idx))), int(round(0.75 * len(idx)))
        train[idx[:a]], val[idx[a:b]], test[idx[b:]] = True, True, True
    return Split(trial, train, val, test)


def _mask(n, *parts):
    m = np.zeros(n, dtype=bool)
    for p in parts:
        m[p] = True
    return m


def _summarise(per_trial, dataset, protocol, names, notes) -> pd.DataFrame:
    rows = []
    for name in names:
        t = per_trial[per_trial.method == name]
        row = {"dataset": dataset, "protocol": protocol, "method": name}
        for met in ("auroc", "auprc", "rec_at_k"):
            row[f"{met}_mean"] = t[met].mean() if len(t) else np.nan
            row[f"{met}_std"] = t[met].std(ddof=1) if len(t) > 1 else (0.0 if len(t) else np.nan)
        row.update(trials=len(t), seconds=t.seconds.mean() if len(t) else np.nan, note=notes.get(name, ""))
        rows.append(row)
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def _run_trials(bench, splits, names, protocol, seed, progress):
    graph = bench.graph
    rows, notes, flips = [], {}, {}
    for split in splits:
        previous: dict = {}
        for name in names:
            t0 = time.process_time()
            try:
                scores = METHODS[name][0](bench, split, seed + split.trial, previous)
            except MethodUnavailable as e:
                notes[name] = f"unavailable: {e}"
                continue
            secs = time.process_time() - t0  # includes any shared input this method built first
            if protocol == "unsupervised" and name not in _LABEL_CHOSEN:
                scores, flipped = _check_direction(bench, split, scores)
                if flipped is not None:
                    flips.setdefault(name, []).append(flipped)
            previous[name] = scores
            m = evaluate_scores(graph.labels[split.test], scores[split.test])
            rows.append({"dataset": graph.name, "protocol": protocol, "method": name, "trial": split.trial,
                         **m, "seconds": secs})
            if progress:
                print(f"{graph.name} {protocol} trial {split.trial} {name}: auroc {m['auroc']:.4f} "
                      f"({secs:.1f} s)", flush=True)
    per_trial = pd.DataFrame(rows, columns=["dataset", "protocol", "method", "trial", "auroc", "auprc",
                                            "rec_at_k", "seconds"])
    for name, f in flips.items():
        notes[name] = (f"direction flipped in {len(f)}/{len(splits)} trials (AUROC {min(f):.2f}-{max(f):.2f} on "
                       "labelled non-test nodes)")
    if bench.note:
        for name in names:
            notes.setdefault(name, bench.note)
    return per_trial, notes


def _check_direction(bench, split, scores):
    """Flip an unsupervised score that ranks the labelled non-test nodes the wrong way round.

    Returns the scores (negated when flipped) and the AUROC that triggered the flip, or None.
    """
    pool = bench.check_pool(split)
    y = bench.y[pool]
    if len(np.unique(y)) < 2:
        return scores, None
    auc = _auc(y, np.asarray(scores, dtype=float)[pool])
    return (-np.asarray(scores, dtype=float), auc) if auc < 0.5 else (scores, None)
