import json
import re

import networkx as nx
import pandas as pd
import pytest

from fraudkit.errors import MissingInputError
from fraudkit.report.masking import mask_entity
from fraudkit.report.viz import NODE_STYLE, render_community, render_neighbourhood

EDGES = pd.DataFrame({
    "src": ["a1", "a2", "a3", "a1", "a4"],
    "dst": ["13812345678", "13812345678", "10.1.2.3", "dev-abcdef123", "dev-abcdef123"],
    "src_type": "account", "dst_type": ["phone", "phone", "ip", "device", "device"]})


def _nodes(html):
    m = re.search(r"nodes = new vis\.DataSet\((\[.*?\])\);", html, re.S)
    return json.loads(m.group(1))


def test_offline_masked_typed(tmp_path):
    p = render_neighbourhood(EDGES, ["a1"], hops=2, path=tmp_path / "n.html")
    html = p.read_text()
    assert re.search(r"""(src|href)\s*=\s*["']https?://""", html, re.I) is None
    assert "new vis.Network" in html and "PII keys masked" in html
    assert "13812345678" not in html and "dev-abcdef123" not in html
    nodes = _nodes(html)
    labels = {n["label"] for n in nodes}
    assert {"a1", "a2", "a4"} <= labels and "a3" not in labels
    phone = [n for n in nodes if n["color"] == NODE_STYLE["phone"][0]]
    assert len(phone) == 1 and phone[0]["shape"] == NODE_STYLE["phone"][1]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temp file


def test_deterministic_and_capped(tmp_path):
    a = render_neighbourhood(EDGES, ["a1"], hops=2, path=tmp_path / "a.html").read_text()
    b = render_neighbourhood(EDGES, ["a1"], hops=2, path=tmp_path / "b.html").read_text()
    assert a == b and '"randomSeed": 0' in a
    small = render_neighbourhood(EDGES, ["a1"], hops=2, max_nodes=2, path=tmp_path / "c.html").read_text()
    assert len(_nodes(small)) == 2


def test_community_shared_entities_and_networkx(tmp_path):
    html = render_community(EDGES, ["a1", "a2"], path=tmp_path / "c.html").read_text()
    labels = {n["label"] for n in _nodes(html)}
    assert labels == {"a1", "a2", mask_entity("phone", "13812345678")}
    g = nx.Graph()
    g.add_node("x", type="account")
    g.add_node("1.2.3.4", type="ip")
    g.add_edge("x", "1.2.3.4")
    html = render_neighbourhood(g, ["x"], path=tmp_path / "g.html", mask=False).read_text()
    assert "1.2.3.4" in {n["label"] for n in _nodes(html)}


def test_bad_input(tmp_path):
    with pytest.raises(MissingInputError):
        render_neighbourhood(EDGES, ["nobody"], path=tmp_path / "x.html")
    with pytest.raises(MissingInputError):
        render_neighbourhood(pd.DataFrame({"a": [1]}), ["a"], path=tmp_path / "x.html")
    with pytest.raises(TypeError):
        render_neighbourhood(42, ["a"], path=tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


def test_the_frame_holds_the_whole_canvas_and_ip_labels_stay_distinct(tmp_path):
    """The report's frame is the canvas plus the legend; IPs in one /16 get different masked labels."""
    import re

    from fraudkit.report.display import Graph
    from fraudkit.report.viz import CANVAS_HEIGHT, FRAME_HEIGHT, render_community

    edges = pd.DataFrame({"src": ["a1", "a2", "a1", "a2"], "dst": ["139.224.1.1", "139.224.1.1", "139.224.9.9",
                                                                     "139.224.9.9"],
                          "src_type": "account", "dst_type": "ip"})
    doc = render_community(edges, ["a1", "a2"], path=tmp_path / "c.html").read_text()
    assert f"height: {CANVAS_HEIGHT}px" in doc and FRAME_HEIGHT >= CANVAS_HEIGHT + 100
    labels = set(re.findall(r"139\.224\.\*\.\* #[0-9a-f]{4}", doc))
    assert len(labels) == 2
    assert f"height:{FRAME_HEIGHT}px" in Graph(doc, title="c").html()
