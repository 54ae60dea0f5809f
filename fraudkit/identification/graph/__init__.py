"""Stage 3, graphs: communities and their screening, label propagation and personalised PageRank,
dense sub-graphs (FRAUDAR), the association network, and the capture and consolidation tests.
"""
