"""Tests for fraudkit.capability.ipranges: one /24 key format in Python, SQL, features and graph nodes."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from fraudkit.capability.features import ip24_features
from fraudkit.capability.graphs import build_hetero_graph
from fraudkit.capability.ipranges import ip24, ip24_array, ip24_sql

ODD = ["10.1.2.3", "10.1.2.250", "192.168.0.1", None, "2001:db8::1", "10.1.2", "not an ip", "1.2.3.4.5", ""]


def test_python_and_sql_give_the_same_keys():
    want = ["10.1.2.0/24", "10.1.2.0/24", "192.168.0.0/24", None, None, None, None, None, None]
    assert ip24(ODD).tolist() == want
    assert ip24_array(np.array(ODD, dtype=object)).tolist() == want
    rel = pd.DataFrame({"i": range(len(ODD)), "ip": ODD})  # noqa: F841 (read by DuckDB by name)
    sql = duckdb.sql(f"SELECT {ip24_sql('ip')} AS k FROM rel ORDER BY i").fetchall()
    assert [r[0] for r in sql] == want
    assert ODD[0] == "10.1.2.3"  # input not modified


def test_features_and_graph_nodes_share_the_key(tiny_tables):
    feats = ip24_features(tiny_tables)
    graph = build_hetero_graph({"logins": tiny_tables["logins"]}, edge_types=["in_subnet"])
    nodes = set(graph.nodes.loc[graph.nodes["type"] == "ip24", "key"])
    assert nodes and nodes <= set(feats["ip24"])
    assert nodes == set(ip24(tiny_tables["logins"]["ip"]).dropna())
