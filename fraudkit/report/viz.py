"""Offline pyvis pictures of neighbourhoods and communities, with masked PII.

A reviewer opens the HTML from a report folder, often with no network, so
everything is inlined: pyvis's ``cdn_resources="in_line"`` inlines vis-network;
the bootstrap links pyvis's template adds regardless are removed (nothing here
uses them) and any other remote ``src``/``href`` is refused. Nodes are coloured
and shaped by type, a legend is drawn, titles show masked keys (phones, IPs,
device ids, addresses are PII), and the layout is seeded.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd

from fraudkit.capability.graphs import HeteroGraph
from fraudkit.data.atomic import write_text
from fraudkit.errors import MissingInputError
from fraudkit.report.masking import mask_entity

__all__ = ["NODE_STYLE", "CANVAS_HEIGHT", "FRAME_HEIGHT", "render_neighbourhood", "render_community"]

CANVAS_HEIGHT = 520
"""Height in pixels of the drawn graph (the vis-network canvas)."""

FRAME_HEIGHT = CANVAS_HEIGHT + 140
"""Height of the report's frame around a picture: the canvas, the legend above it and the page margins."""

NODE_STYLE = {
    "account": ("#4e79a7", "dot"),
    "device": ("#f28e2b", "square"),
    "ip": ("#e15759", "triangle"),
    "ip24": ("#ff9d9a", "triangleDown"),
    "phone": ("#76b7b2", "diamond"),
    "address": ("#59a14f", "star"),
    "binding": ("#edc948", "hexagon"),
    "note": ("#b07aa1", "ellipse"),
    "product": ("#9c755f", "box"),
    "merchant": ("#bab0ac", "database"),
    "group": ("#d37295", "star"),
    "other": ("#79706e", "dot"),
}
"""Colour and pyvis shape per node type."""

_REMOTE = re.compile(r"""<(script|link)\b[^>]*\b(?:src|href)\s*=\s*["']https?://[^>]*>(?:\s*</script>)?""",
                     re.IGNORECASE | re.DOTALL)


def render_neighbourhood(graph, center_nodes, *, path, hops: int = 1, max_nodes: int = 300, mask: bool = True,
                         scores=None, title: str = "", seed: int = 0) -> Path:
    """Draw the ``hops``-neighbourhood of ``center_nodes`` to a self-contained HTML file.

    Parameters
    ----------
    graph : pandas.DataFrame, fraudkit.capability.graphs.HeteroGraph or networkx.Graph
        An edge list with ``src, dst`` and optionally ``src_type, dst_type, weight,
        type``; a :class:`~fraudkit.capability.graphs.HeteroGraph`; or a networkx graph whose
        nodes may carry a ``type`` attribute.
    center_nodes : iterable
        Keys to centre on (``(type, key)`` tuples also accepted).
    path : str or Path
        Output HTML file (written atomically).
    hops : int, default=1
    max_nodes : int, default=300
        The picture keeps the centre and then nodes in BFS order up to this many.
    mask : bool, default=True
        Mask PII keys in labels and titles.
    scores : mapping, optional
        ``key -> score`` shown in titles and as node size.
    title : str
    seed : int, default=0
        Layout seed (vis-network ``randomSeed``).

    Returns
    -------
    Path

    Examples
    --------
    >>> import pandas as pd, tempfile, pathlib
    >>> e = pd.DataFrame({"src": ["a1", "a2"], "dst": ["d1", "d1"],
    ...                   "src_type": "account", "dst_type": "device"})
    >>> p = render_neighbourhood(e, ["a1"], hops=2, path=pathlib.Path(tempfile.mkdtemp()) / "n.html")
    >>> import re; re.search(r'(src|href)="https?://', p.read_text()) is None
    True
    """
    nodes, edges = _normalise(graph)
    centre = _resolve(nodes, center_nodes)
    if len(centre) == 0:
        raise MissingInputError(f"render_neighbourhood: none of the centre nodes {list(center_nodes)[:5]} "
                                "is in the graph; pass keys that appear in src/dst")
    keep = _bfs(edges, centre, hops, max_nodes)
    return _render(nodes, edges, keep, set(centre), path=path, mask=mask, scores=scores,
                   title=title or f"{hops}-hop neighbourhood", seed=seed)


def render_community(graph, members, *, path, include_neighbours: bool = True, max_nodes: int = 300,
                     mask: bool = True, scores=None, title: str = "", seed: int = 0) -> Path:
    """Draw a community (or group) of nodes, with the entities they share when ``include_neighbours``.

    Parameters
    ----------
    graph : see :func:`render_neighbourhood`
    members : iterable
        The community's node keys; drawn highlighted.
    include_neighbours : bool, default=True
        Also draw nodes adjacent to at least two members (the shared devices,
        IPs, targets that tie the community together).

    Returns
    -------
    Path

    Examples
    --------
    >>> import pandas as pd, tempfile, pathlib
    >>> e = pd.DataFrame({"src": ["a1", "a2", "a3"], "dst": ["d1", "d1", "d2"],
    ...                   "src_type": "account", "dst_type": "device"})
    >>> p = render_community(e, ["a1", "a2"], path=pathlib.Path(tempfile.mkdtemp()) / "c.html")
    >>> p.name
    'c.html'
    """
    nodes, edges = _normalise(graph)
    mem = _resolve(nodes, members)
    if len(mem) == 0:
        raise MissingInputError("render_community: no member is in the graph")
    keep = list(dict.fromkeys(mem))[:max_nodes]
    if include_neighbours and len(keep) < max_nodes:
        ms = set(keep)
        touch = pd.concat([edges.loc[edges["s"].isin(ms), ["d", "s"]].set_axis(["n", "m"], axis=1),
                           edges.loc[edges["d"].isin(ms), ["s", "d"]].set_axis(["n", "m"], axis=1)])
        touch = touch[~touch["n"].isin(ms)]
        k = touch.drop_duplicates().groupby("n").size()
        shared = k[k >= 2].sort_values(ascending=False, kind="stable").index.tolist()
        keep += shared[: max_nodes - len(keep)]
    return _render(nodes, edges, keep, set(mem), path=path, mask=mask, scores=scores,
                   title=title or f"community of {len(mem)}", seed=seed)


# --- private helpers ---------------------------------------------------------


def _local_mask(kind, v):
    if kind in ("ip", "ip24"):
        parts = v.split(".")
        return ".".join(parts[:2] + ["*"] * max(len(parts) - 2, 0)) if len(parts) > 2 else "*"
    if kind == "phone":
        return v[:3] + "****" + v[-4:] if len(v) >= 8 else "****"
    if kind == "address":
        return v[:6] + "…" if len(v) > 6 else "…"
    return v[:4] + "…" + v[-2:] if len(v) > 6 else v[:1] + "…"


def _normalise(graph):
    """Return ``nodes[id, type, key]`` and ``edges[s, d, weight, type]`` with string node ids."""
    if isinstance(graph, HeteroGraph):
        nd = graph.nodes
        ids = nd["type"].astype(str) + ":" + nd["key"].astype(str)
        nodes = pd.DataFrame({"id": ids.to_numpy(), "type": nd["type"].astype(str).to_numpy(),
                              "key": nd["key"].to_numpy()})
        idx = nodes["id"].to_numpy()
        e = graph.edges
        edges = pd.DataFrame({"s": idx[e["src"].to_numpy()], "d": idx[e["dst"].to_numpy()],
                              "weight": e["weight"].to_numpy(float), "type": e["type"].astype(str).to_numpy()})
        return nodes, edges
    if isinstance(graph, pd.DataFrame):
        if not {"src", "dst"} <= set(graph.columns):
            raise MissingInputError(f"edge list needs src and dst columns; got {list(graph.columns)}")
        st = graph["src_type"].astype(str) if "src_type" in graph else pd.Series("account", index=graph.index)
        dt = graph["dst_type"].astype(str) if "dst_type" in graph else pd.Series("account", index=graph.index)
        s = st + ":" + graph["src"].astype(str)
        d = dt + ":" + graph["dst"].astype(str)
        nodes = pd.DataFrame({"id": pd.concat([s, d]).to_numpy(), "type": pd.concat([st, dt]).to_numpy(),
                              "key": pd.concat([graph["src"], graph["dst"]]).to_numpy()})
        nodes = nodes.drop_duplicates("id").reset_index(drop=True)
        edges = pd.DataFrame({"s": s.to_numpy(), "d": d.to_numpy(),
                              "weight": graph["weight"].to_numpy(float) if "weight" in graph else 1.0,
                              "type": graph["type"].astype(str).to_numpy() if "type" in graph else ""})
        return nodes, edges
    if hasattr(graph, "nodes") and hasattr(graph, "edges"):  # networkx
        rows = [(str(n), str(a.get("type", "account")), n) for n, a in graph.nodes(data=True)]
        nodes = pd.DataFrame(rows, columns=["key_str", "type", "key"])
        nodes["id"] = nodes["type"] + ":" + nodes["key_str"]
        lut = dict(zip(nodes["key"], nodes["id"]))
        er = [(lut[u], lut[v], float(a.get("weight", 1.0)), str(a.get("type", ""))) for u, v, a in graph.edges(data=True)]
        return nodes[["id", "type", "key"]], pd.DataFrame(er, columns=["s", "d", "weight", "type"])
    raise TypeError(f"graph must be an edge DataFrame, a HeteroGraph or a networkx graph, got {type(graph).__name__}")


def _resolve(nodes, keys):
    ids = []
    by_key = nodes.groupby(nodes["key"].astype(str))["id"].apply(list).to_dict()
    idset = set(nodes["id"])
    for k in keys:
        if isinstance(k, tuple) and len(k) == 2:
            i = f"{k[0]}:{k[1]}"
            if i in idset:
                ids.append(i)
        else:
            ids.extend(by_key.get(str(k), []))
    return list(dict.fromkeys(ids))


def _bfs(edges, centre, hops, max_nodes):
    keep = list(dict.fromkeys(centre))[:max_nodes]
    seen = set(keep)
    frontier = set(keep)
    for _ in range(int(hops)):
        if not frontier or len(keep) >= max_nodes:
            break
        a = edges.loc[edges["s"].isin(frontier), ["d", "weight"]].set_axis(["n", "w"], axis=1)
        b = edges.loc[edges["d"].isin(frontier), ["s", "weight"]].set_axis(["n", "w"], axis=1)
        nb = pd.concat([a, b]).groupby("n")["w"].sum().sort_values(ascending=False, kind="stable")
        new = [n for n in nb.index if n not in seen][: max_nodes - len(keep)]
        keep += new
        seen.update(new)
        frontier = set(new)
    return keep


def _render(nodes, edges, keep, highlight, *, path, mask, scores, title, seed):
    from pyvis.network import Network

    keep_set = set(keep)
    nd = nodes.set_index("id").loc[keep]
    sub = edges[edges["s"].isin(keep_set) & edges["d"].isin(keep_set)]
    sub = sub.groupby(["s", "d"], as_index=False, sort=False).agg(weight=("weight", "sum"), type=("type", "first"))
    scores = {} if scores is None else {str(k): float(v) for k, v in dict(scores).items()}
    net = Network(height=f"{CANVAS_HEIGHT}px", width="100%", cdn_resources="in_line", directed=False, heading="")
    vid = {nid: i for i, nid in enumerate(nd.index)}  # opaque ids: raw keys never reach the page
    for nid, row in nd.iterrows():
        typ = row["type"] if row["type"] in NODE_STYLE else "other"
        colour, shape = NODE_STYLE[typ]
        key = mask_entity(typ, row["key"]) if mask else str(row["key"])
        sc = scores.get(str(row["key"]))
        role = ("member" if nid in highlight else "shared by members") if typ != "account" or nid in highlight \
            else "neighbour"
        tip = f"{typ} ({role}): {key}" + (f"\nscore {sc:.3f}" if sc is not None else "")
        net.add_node(vid[nid], label=key, title=tip, color=colour, shape=shape,
                     size=12 + (18 * min(max(sc, 0), 1) if sc is not None else 0),
                     borderWidth=4 if nid in highlight else 1)
    for s, d, w, t in sub[["s", "d", "weight", "type"]].itertuples(index=False):
        net.add_edge(vid[s], vid[d], value=float(w), title=f"{t} ({w:g})" if t else f"{w:g}")
    net.set_options('{"layout": {"randomSeed": %d}, "physics": {"stabilization": {"iterations": 200}}}' % int(seed))
    doc = net.generate_html(notebook=False)
    doc = _offline(doc)
    types = sorted(set(nd["type"].where(nd["type"].isin(list(NODE_STYLE)), "other")))
    doc = doc.replace("<body>", "<body>\n" + _legend(types, title), 1)
    return write_text(path, doc)


def _offline(doc: str) -> str:
    """Remove remote script/link tags (pyvis adds bootstrap from a CDN); refuse if any remain."""
    doc = _REMOTE.sub("", doc)
    left = re.findall(r"""(?:src|href)\s*=\s*["']https?://""", doc, flags=re.IGNORECASE)
    if left:
        raise RuntimeError("viz: a remote resource is still referenced after inlining; refusing to write")
    return doc


def _legend(types, title):
    items = "".join(
        f'<span style="margin-right:14px"><span style="display:inline-block;width:12px;height:12px;'
        f'background:{NODE_STYLE[t][0]};margin-right:4px"></span>{html.escape(t)} ({NODE_STYLE[t][1]})</span>'
        for t in types)
    return (f'<div style="font-family:sans-serif;padding:6px"><b>{html.escape(title)}</b><br>{items}'
            f"<br><small>PII keys masked (IPs and addresses with a keyed tag, so different keys stay different). "
            f"Thick border: a member (or the centre); other nodes: the devices, IPs, notes and products members "
            f"share.</small></div>")
