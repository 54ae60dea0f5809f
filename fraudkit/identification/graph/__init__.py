"""Stage 3, graphs: communities and their screening, label propagation and personalised PageRank,
dense sub-graphs (FRAUDAR) and the association network.
"""
