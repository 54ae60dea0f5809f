"""Community fitness: how community-like a detected community is, measured by cdlib on a networkx graph.

Modularity scores a whole partition; an analyst screening one suspicious community wants to know how closed it
is (conductance, expansion: edges leaving it), how dense (internal edge density, average internal degree) and how
clustered (triangle participation). cdlib implements these measures on networkx graphs; the kit builds the small
networkx graph of the chosen communities and their boundary edges only, so the cost follows the communities
shown, not the whole account graph (igraph and leidenalg do the detection on the whole graph).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudkit.errors import MissingInputError
from fraudkit.identification.graph.communities import Partition

__all__ = ["FITNESS_MEASURES", "community_fitness"]

FITNESS_MEASURES = ("conductance", "expansion", "internal_edge_density", "average_internal_degree",
                    "triangle_participation_ratio")
"""cdlib fitness functions computed per community; lower conductance/expansion = more closed."""


def community_fitness(edges: pd.DataFrame, partition: Partition, *, communities=None, max_communities: int = 50,
                      src: str = "src", dst: str = "dst") -> pd.DataFrame:
    """cdlib fitness measures of communities, on the networkx graph of their edges and boundary edges.

    Parameters
    ----------
    edges : pandas.DataFrame
        The edge list the partition was detected on (columns ``src``, ``dst``; weights are not used: cdlib's
        fitness functions count edges).
    partition : Partition
    communities : iterable of int, optional
        Community ids to measure (default: the ``max_communities`` largest with at least three members).
    max_communities : int, default=50
    src, dst : str

    Returns
    -------
    pandas.DataFrame
        One row per community: ``community``, ``size``, then :data:`FITNESS_MEASURES`; sorted by community id.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> e = pd.DataFrame({"src": [1, 1, 2, 4, 4, 5, 3], "dst": [2, 3, 3, 5, 6, 6, 4]})
    >>> p = Partition(np.array([1, 2, 3, 4, 5, 6]), np.array([0, 0, 0, 1, 1, 1]), "x", n_communities=2)
    >>> f = community_fitness(e, p)
    >>> f[["community", "size", "conductance", "internal_edge_density"]].round(3).values.tolist()
    [[0.0, 3.0, 0.143, 1.0], [1.0, 3.0, 0.143, 1.0]]
    """
    import networkx as nx
    from cdlib import NodeClustering, evaluation  # optional heavy import (about 3 s): only when measures are asked

    missing = [c for c in (src, dst) if c not in edges.columns]
    if missing:
        raise MissingInputError(f"community_fitness: edges lack column(s) {missing}; got {list(edges.columns)}. "
                                "Fix: pass the edge list the partition was detected on (src, dst).")
    sizes = partition.sizes()
    if communities is None:
        order = np.argsort(-sizes, kind="stable")
        communities = [int(c) for c in order[:max_communities] if sizes[c] >= 3]
    communities = sorted({int(c) for c in communities})
    columns = ["community", "size", *FITNESS_MEASURES]
    if not communities:
        return pd.DataFrame(columns=columns)
    member = pd.Series(partition.membership, index=pd.Index(partition.nodes))
    chosen = member[member.isin(communities)]
    touch = edges[src].isin(chosen.index) | edges[dst].isin(chosen.index)
    sub = edges.loc[touch, [src, dst]]
    graph = nx.Graph()
    graph.add_nodes_from(chosen.index.tolist())
    graph.add_edges_from(zip(sub[src].tolist(), sub[dst].tolist()))
    groups = [chosen.index[chosen.to_numpy() == c].tolist() for c in communities]
    clustering = NodeClustering(groups, graph, partition.method)
    rows = {"community": communities, "size": [len(g) for g in groups]}
    for name in FITNESS_MEASURES:
        rows[name] = getattr(evaluation, name)(graph, clustering, summary=False)
    return pd.DataFrame(rows, columns=columns).astype(float).astype({"community": int, "size": int})
