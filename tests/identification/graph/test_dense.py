import itertools

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fraudkit.errors import MissingInputError
from fraudkit.identification.graph.dense import DenseBlock, block_scores, column_weights, fraudar, fraudar_frame


def _planted(seed=0, nr=3000, nc=1500, n_edges=40000, camouflage=20):
    rng = np.random.default_rng(seed)
    pop = rng.zipf(1.7, size=nc).astype(float)
    r = rng.integers(0, nr, n_edges)
    c = rng.choice(nc, n_edges, p=pop / pop.sum())
    br, bc = np.arange(100, 150), np.arange(700, 715)
    cells = np.array(list(itertools.product(br, bc)))
    cells = cells[rng.random(len(cells)) < 0.9]
    top = np.argsort(-pop)[:200]
    cam = np.array([(i, j) for i in br for j in rng.choice(top, camouflage, replace=False)])
    R = np.r_[r, cells[:, 0], cam[:, 0]]
    C = np.r_[c, cells[:, 1], cam[:, 1]]
    return sp.csr_matrix((np.ones(len(R)), (R, C)), shape=(nr, nc)), br, bc


def test_recovers_planted_block_behind_camouflage():
    A, br, bc = _planted()
    blocks = fraudar(A, max_blocks=1)
    b = blocks[0]
    assert set(b.rows.tolist()) == set(br.tolist())
    assert set(bc.tolist()) <= set(b.cols.tolist())
    # density reported is the objective of the reported set
    A1 = A.copy()
    A1.data[:] = 1
    w = column_weights(A1)
    mass = A1[b.rows][:, b.cols].multiply(w[b.cols][None, :]).sum()
    assert b.density == pytest.approx(mass / (len(b.rows) + len(b.cols)))
    assert b.mass == pytest.approx(mass)


def test_log_weight_beats_uniform_on_camouflage():
    A, br, _ = _planted(camouflage=60)
    uni = fraudar(A, weight="uniform", max_blocks=1)[0]
    log = fraudar(A, weight="log", max_blocks=1)[0]
    prec = lambda b: len(set(b.rows) & set(br)) / len(b.rows)
    assert prec(log) == 1.0
    assert prec(log) >= prec(uni)


def test_two_blocks_found_and_disjoint():
    a = np.zeros((60, 40))
    a[0:10, 0:6] = 1
    a[20:28, 10:18] = 1
    a[40, 30] = a[41, 31] = a[50, 5] = 1
    blocks = fraudar(sp.csr_matrix(a), max_blocks=3, weight="uniform", min_density=1.0)
    assert len(blocks) == 2
    assert {tuple(b.rows) for b in blocks} == {tuple(range(10)), tuple(range(20, 28))}
    s = block_scores(blocks, 60)
    assert (s[:10] > 0).all() and (s[20:28] > 0).all() and s[40] == 0


def test_greedy_is_half_optimal_on_small_graphs():
    rng = np.random.default_rng(3)
    for _ in range(5):
        a = (rng.random((5, 4)) < 0.45).astype(float)
        if a.sum() == 0:
            continue
        best = 0.0
        for rs in itertools.chain.from_iterable(itertools.combinations(range(5), k) for k in range(1, 6)):
            for cs in itertools.chain.from_iterable(itertools.combinations(range(4), k) for k in range(1, 5)):
                best = max(best, a[np.ix_(rs, cs)].sum() / (len(rs) + len(cs)))
        got = fraudar(sp.csr_matrix(a), weight="uniform", max_blocks=1, min_rows=1, min_cols=1)
        assert got and got[0].density >= best / 2 - 1e-12


def test_input_not_mutated_and_deterministic():
    A, _, _ = _planted(seed=1)
    before = A.copy()
    b1 = fraudar(A, max_blocks=2)
    b2 = fraudar(A, max_blocks=2)
    assert (A != before).nnz == 0
    assert [x.rows.tolist() for x in b1] == [x.rows.tolist() for x in b2]


def test_frame_keys_and_empty():
    e = pd.DataFrame({"account_id": ["u1", "u1", "u2", "u2", "u3", "u3", "u4"],
                      "target_id": ["n1", "n2", "n1", "n2", "n1", "n2", "n9"]})
    blocks, m = fraudar_frame(e, max_blocks=1)
    assert sorted(m.loc[m.side == "row", "entity_id"]) == ["u1", "u2", "u3"]
    assert sorted(m.loc[m.side == "col", "entity_id"]) == ["n1", "n2"]
    assert isinstance(blocks[0], DenseBlock) and blocks[0].fill == 1.0
    _, m0 = fraudar_frame(e.iloc[:0])
    assert len(m0) == 0 and m0["density"].dtype == float


def test_bad_input():
    A = sp.csr_matrix(np.eye(3))
    with pytest.raises(ValueError):
        fraudar(A, max_blocks=0)
    with pytest.raises(ValueError):
        fraudar(A, weight="nope")
    with pytest.raises(ValueError):
        fraudar(A, weight=[1.0, 2.0])
    with pytest.raises(MissingInputError):
        fraudar_frame(pd.DataFrame({"a": [1]}))


def _heavy_honest_and_light_lockstep(seed=0):
    """300 honest accounts engaging ~40 targets each (popularity-skewed), and 20 paid accounts that each engage
    5 of 6 niche notes plus 3 popular ones as camouflage: the paid block is sparser than the honest core."""
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, 501) ** 0.8
    pop /= pop.sum()
    rows = [(f"h{i}", int(t)) for i in range(300) for t in rng.choice(500, 40, replace=False, p=pop)]
    for w in range(20):
        rows += [(f"w{w}", 1000 + int(t)) for t in rng.choice(6, 5, replace=False)]
        rows += [(f"w{w}", int(t)) for t in rng.choice(20, 3, replace=False)]
    return pd.DataFrame(rows, columns=["account_id", "target_id"]).drop_duplicates()


def test_block_excess_separates_lockstep_from_heavy_cores():
    """A lockstep block of light accounts is sparser than a core of heavy honest users (FRAUDAR's average mass
    ranks the core first) but its edges far exceed what its members' degrees predict, and they are most of
    its members' activity; the heavy core is what its degrees predict."""
    from fraudkit.identification.graph.dense import block_excess

    e = _heavy_honest_and_light_lockstep()
    heavy = e["account_id"].value_counts().index[:60]
    core_t = e.loc[e["account_id"].isin(heavy), "target_id"].value_counts().index[:60]
    paid = [f"w{w}" for w in range(20)]
    members = pd.concat([
        pd.DataFrame({"block_id": 0, "side": "row", "entity_id": heavy}),
        pd.DataFrame({"block_id": 0, "side": "col", "entity_id": core_t}),
        pd.DataFrame({"block_id": 1, "side": "row", "entity_id": paid}),
        pd.DataFrame({"block_id": 1, "side": "col", "entity_id": np.arange(1000, 1006)})], ignore_index=True)
    ex = block_excess(e, members).set_index("block_id")
    n_core = int((e["account_id"].isin(heavy) & e["target_id"].isin(core_t)).sum())
    assert ex.loc[0, "n_edges"] == n_core and ex.loc[1, "n_edges"] == 100
    # the core is denser per node than the paid block ...
    assert n_core / (len(heavy) + len(core_t)) > 100 / (20 + 6)
    # ... but only the paid block is concentration beyond chance
    assert ex.loc[1, "lift"] > 10 and ex.loc[1, "excess_share"] > 0.5
    assert ex.loc[0, "lift"] < 2 and ex.loc[0, "excess_share"] < 0.2
    # exact figures
    assert round(float(ex.loc[1, "expected_edges"]), 3) == round(20 * 8 * 100 / len(e), 3)  # d(R) d(C) / m


def _heapq_peel(sub):
    """The greedy peel as first written, in Python over heapq tuples: the reference the compiled one must equal."""
    import heapq

    nr, nc = sub.shape
    n = nr + nc
    full = sp.bmat([[None, sub], [sub.T, None]], format="csr")
    indptr, indices, data = full.indptr.tolist(), full.indices.tolist(), full.data.tolist()
    deg = np.asarray(full.sum(axis=1)).ravel().tolist()
    alive = [True] * n
    heap = [(d, i) for i, d in enumerate(deg)]
    heapq.heapify(heap)
    mass = float(sub.sum())
    n_alive, best, best_k, order = n, mass / n, 0, []
    while heap:
        d, u = heapq.heappop(heap)
        if not alive[u] or d != deg[u]:
            continue
        alive[u] = False
        order.append(u)
        mass -= d
        n_alive -= 1
        for p in range(indptr[u], indptr[u + 1]):
            v = indices[p]
            if alive[v]:
                deg[v] -= data[p]
                heapq.heappush(heap, (deg[v], v))
        if n_alive > 0 and mass / n_alive > best:
            best, best_k = mass / n_alive, len(order)
    keep = np.ones(n, dtype=bool)
    keep[np.asarray(order[:best_k], dtype=int)] = False
    return np.flatnonzero(keep[:nr]), np.flatnonzero(keep[nr:]), float(best)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compiled_peel_equals_the_heapq_peel(seed):
    from fraudkit.identification.graph.dense import _greedy_peel

    a, _, _ = _planted(seed=seed)
    a.data[:] = 1.0
    a.sum_duplicates()
    w = column_weights(a)
    # weighted (ties rare) and unweighted (many equal degrees: the order of ties decides)
    for m in (sp.csr_matrix(a.multiply(w[None, :])), sp.csr_matrix((a > 0).astype(float))):
        got, want = _greedy_peel(m), _heapq_peel(m)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        assert got[2] == want[2]
        assert 0 < len(got[0]) < m.shape[0]


def _whole_matrix_peelings(wa, wt, eps):
    """The batch-peel bound and the core as they were computed before the matrix was cut down to the live nodes:
    every round multiplies the whole matrix."""
    nr, nc = wa.shape
    ar, ac, best = np.ones(nr, dtype=bool), np.ones(nc, dtype=bool), 0.0
    while True:
        dr, dc = (wa @ ac.astype(float)) * ar, (wt @ ar.astype(float)) * ac
        n = ar.sum() + ac.sum()
        mass = dr.sum()
        if n == 0 or mass <= 0:
            break
        best = max(best, mass / n)
        cut = 2 * (1 + eps) * mass / n
        ar, ac = ar & (dr > cut), ac & (dc > cut)
    thr = best * (1 - 1e-9)
    ar, ac = np.ones(nr, dtype=bool), np.ones(nc, dtype=bool)
    while True:
        nar = ar & (wa @ ac.astype(float) >= thr)
        nac = ac & (wt @ nar.astype(float) >= thr)
        if nar.sum() == ar.sum() and nac.sum() == ac.sum():
            return best, ar, ac
        ar, ac = nar, nac


def test_peelings_on_the_live_nodes_give_the_whole_matrix_bits(monkeypatch):
    """The peelings multiply only the matrix cut down to the live nodes: the same bound (to the bit) and core."""
    from fraudkit.identification.graph import dense

    cuts = []
    keep = dense._LiveNodes.keep

    def counted(self, ar, ac):
        held = len(self.rows)
        keep(self, ar, ac)
        cuts.append(len(self.rows) < held)

    monkeypatch.setattr(dense._LiveNodes, "keep", counted)
    for seed in range(3):
        A, _, _ = _planted(seed=seed)
        A.sum_duplicates()
        A.data[:] = 1.0
        wa = sp.csr_matrix(A.multiply(column_weights(A)[None, :]))
        wt = wa.T.tocsr()
        best, ar, ac = _whole_matrix_peelings(wa, wt, 0.1)
        bound = dense._batch_peel_bound(wa, wt)
        assert bound == best and bound > 0
        core_r, core_c = dense._core(wa, wt, bound)
        assert np.array_equal(core_r, ar) and np.array_equal(core_c, ac) and 0 < core_r.sum() < A.shape[0]
    assert any(cuts) and not all(cuts)  # the matrix was cut down, and not in every round


def test_live_degrees_are_the_whole_matrix_degrees_with_the_dead_nodes_out():
    """Kept nodes more than half (the matrix stays) or half or fewer (it is cut down): the live nodes' degrees are
    the whole matrix's bits over the live nodes, and the dead rows count 0 once masked."""
    from fraudkit.identification.graph import dense

    A, _, _ = _planted(seed=4)
    A.sum_duplicates()
    wa = sp.csr_matrix(A.multiply(np.random.default_rng(4).random(A.shape[1])[None, :] + 0.01))
    wt = wa.T.tocsr()
    live = dense._LiveNodes(wa, wt)
    rng = np.random.default_rng(5)
    ar, ac = np.ones(wa.shape[0], dtype=bool), np.ones(wa.shape[1], dtype=bool)
    held = []
    for share in (0.8, 0.9, 0.3, 0.7):  # of the live nodes kept each time
        kr, kc = live.ar & (rng.random(len(live.ar)) < share), live.ac & (rng.random(len(live.ac)) < share)
        ar[live.rows[~kr & live.ar]], ac[live.cols[~kc & live.ac]] = False, False
        live.keep(kr, kc)
        held.append(len(live.rows))
        whole_r, whole_c = (wa @ ac.astype(float)) * ar, (wt @ ar.astype(float)) * ac
        assert np.array_equal((live.row_degrees() * live.ar), whole_r[live.rows])
        assert np.array_equal((live.col_degrees(live.ar) * live.ac), whole_c[live.cols])
        assert not whole_r[np.setdiff1d(np.arange(wa.shape[0]), live.rows)].any()
    # 0.8 and 0.9 of the nodes kept: the matrix stays; 0.3 then 0.7 of what is left: cut down, then kept
    assert held[0] == held[1] == wa.shape[0] and held[2] < held[1] and held[3] == held[2]
