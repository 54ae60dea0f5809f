"""The review queue: a sample of a run's accounts for analysts to label, and what their verdicts estimate.

A platform without a simulated twin learns its precision from reviews. :func:`review_queue` draws from a
run's ``accounts.parquet`` a sample in four disjoint strata:

``top_risk``
    the highest ``score_combined`` among flagged accounts: a census (every one is reviewed), to confirm the
    strongest cases first;
``uncertain``
    accounts flagged on one method's evidence alone, and the highest-ranked accounts no method flagged: a
    census of the boundary, where a verdict teaches the models most;
``random_flagged`` / ``random_unflagged``
    simple random samples of the remaining flagged and unflagged accounts.

Each row carries its stratum's size and inclusion probability, so the verdicts give an unbiased, stratified
estimate (:func:`estimate_from_review`): the precision of the run's flagged accounts and the prevalence of
fraud among all accounts, each with a 95 % interval (Wilson's interval on Kish's effective sample size). A
census stratum adds no sampling error; the random strata carry it. ``unsure`` verdicts are left out of the
estimate and counted.

Each row also says why the account is there: the rules it hit, the behaviour models' reasons, its group and
community, the resources it shares and its path to a seed (from the run's own outputs).

``fraudkit review RUN --n 200`` writes the queue as CSV (a ``verdict`` column to fill with ``fraud``,
``honest`` or ``unsure``); ``fraudkit label RUN REVIEWED.csv --store LABELS`` appends the verdicts to the
label store (:mod:`fraudkit.data.labels`) and prints the estimate; ``fraudkit score DATA --labels LABELS``
trains on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fraudkit.data.contract import FRAUD_TYPOLOGIES
from fraudkit.data.atomic import atomic_path
from fraudkit.data.labels import VERDICTS, append_labels
from fraudkit.evaluation.metrics import neutralise_formulas
from fraudkit.identification.base import wilson_bounds
from fraudkit.errors import DataValidationError, FraudkitError, ValidationIssue
from fraudkit.randomness import check_random_state

__all__ = ["STRATA", "review_queue", "write_review", "read_review", "estimate_from_review", "ReviewEstimate",
           "estimate_share", "estimate_recall", "ShareEstimate", "record_verdicts", "verdicts_from_labels"]

STRATA = ("top_risk", "uncertain", "random_flagged", "random_unflagged")
"""Strata of a review queue, in the order rows are listed."""

_VERDICT_VALUES = (*VERDICTS, "unsure")


def review_queue(run_dir, *, n=200, seed=0, shares=(0.25, 0.25)) -> pd.DataFrame:
    """A review sample of the run's accounts, with strata, inclusion probabilities and explanations.

    Parameters
    ----------
    run_dir : path
        A run directory written by ``fraudkit score``.
    n : int, default=200
        Accounts in the sample (fewer when the run has fewer accounts).
    seed : int, default=0
        Seed of the random strata: the same run and seed give the same sample.
    shares : tuple of float, default=(0.25, 0.25)
        Shares of ``n`` for the ``top_risk`` and ``uncertain`` strata; the rest is split evenly between the
        random flagged and random unflagged strata (a stratum smaller than its share gives the rest to the
        other).

    Returns
    -------
    pandas.DataFrame
        One row per sampled account: ``review_id, account_id, stratum, stratum_size, inclusion_probability,
        score_combined, flagged_combined, flagged_by, rules, model_reasons, group_reason, community,
        shared_resources, path_to_seed, verdict, reviewer, note`` (the last three empty, for the analyst).
    """
    run_dir = Path(run_dir)
    path = run_dir / "accounts.parquet"
    if not path.is_file():
        raise FraudkitError(f"{run_dir} is not a run directory (no accounts.parquet); review the folder "
                            "`fraudkit score DATA --out RUN` wrote")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise FraudkitError(f"review: n must be a positive whole number, got {n!r}")
    acc = pd.read_parquet(path)
    acc = acc.assign(account_id=acc["account_id"].astype(str)).sort_values(
        ["score_combined", "account_id"], ascending=[False, True], kind="stable").reset_index(drop=True)
    flags = [c for c in acc.columns if c.startswith("flagged_") and c != "flagged_combined"]
    n_flags = acc[flags].fillna(False).astype(bool).sum(axis=1).to_numpy() if flags else np.zeros(len(acc), int)
    flagged = acc["flagged_combined"].fillna(False).astype(bool).to_numpy()
    n = int(min(n, len(acc)))
    stratum = np.full(len(acc), "", dtype=object)
    n_top = min(int(round(n * shares[0])), int(flagged.sum()))
    top = np.flatnonzero(flagged)[:n_top]
    stratum[top] = "top_risk"
    n_unc = int(round(n * shares[1]))
    weak = np.flatnonzero(flagged & (n_flags <= 1) & (stratum == ""))[::-1]   # lowest-ranked single-flag first
    near = np.flatnonzero(~flagged & (stratum == ""))                          # highest-ranked unflagged first
    half = n_unc // 2
    take_w = min(len(weak), max(half, n_unc - len(near)))
    take_n = min(len(near), n_unc - take_w)
    stratum[weak[:take_w]] = "uncertain"
    stratum[near[:take_n]] = "uncertain"
    rest = n - int((stratum != "").sum())
    rf = np.flatnonzero(flagged & (stratum == ""))
    ru = np.flatnonzero(~flagged & (stratum == ""))
    k_f = min(len(rf), max(rest // 2, rest - len(ru)))
    k_u = min(len(ru), rest - k_f)
    rng = check_random_state(seed)
    pick_f = np.sort(rng.choice(rf, size=k_f, replace=False)) if k_f else np.array([], int)
    pick_u = np.sort(rng.choice(ru, size=k_u, replace=False)) if k_u else np.array([], int)
    size = {"top_risk": len(top), "uncertain": take_w + take_n, "random_flagged": len(rf),
            "random_unflagged": len(ru)}
    picked = {"random_flagged": pick_f, "random_unflagged": pick_u}
    stratum[pick_f] = "random_flagged"
    stratum[pick_u] = "random_unflagged"
    rows = acc[stratum != ""].assign(stratum=stratum[stratum != ""])
    rows["stratum_size"] = rows["stratum"].map(size).astype(np.int64)
    taken = {s: (len(picked[s]) if s in picked else size[s]) for s in STRATA}
    rows["inclusion_probability"] = rows["stratum"].map(
        lambda s: taken[s] / size[s] if size[s] else 0.0).astype(float)
    rows["flagged_by"] = [", ".join(f[len("flagged_"):] for f in flags if r[f]) for _, r in
                          rows[flags].fillna(False).astype(bool).iterrows()] if flags else ""
    rows = rows.assign(_order=rows["stratum"].map({s: i for i, s in enumerate(STRATA)}))
    rows = rows.sort_values(["_order", "score_combined", "account_id"], ascending=[True, False, True],
                            kind="stable").drop(columns="_order")
    out = rows[["account_id", "stratum", "stratum_size", "inclusion_probability", "score_combined",
                "flagged_combined", "flagged_by"]].reset_index(drop=True)
    out = out.merge(_explanations(run_dir, set(out["account_id"])), on="account_id", how="left")
    out.insert(0, "review_id", [f"r{i + 1:04d}" for i in range(len(out))])
    for c in ("verdict", "reviewer", "note"):
        out[c] = ""
    return out


def write_review(queue: pd.DataFrame, path, *, run_dir=None) -> Path:
    """Write a review queue as CSV (UTF-8 with a byte-order mark, so spreadsheets read Chinese text), atomically.

    Text that would start a spreadsheet formula is neutralised. ``path`` may not be inside ``run_dir``: the
    run's outputs stay what ``score`` wrote.
    """
    path = Path(path)
    if run_dir is not None and Path(run_dir).resolve() in path.resolve().parents:
        raise FraudkitError(f"review file {path} is inside the run directory {run_dir}; write it elsewhere "
                            "(e.g. --out review.csv)")
    if path.is_dir():
        raise FraudkitError(f"review file {path} is a folder; pass a file name such as review.csv")
    with atomic_path(path) as tmp:
        neutralise_formulas(queue).to_csv(tmp, index=False, encoding="utf-8-sig")
    return path


def record_verdicts(run_dir, review_path, store, *, reviewer=None, time=None):
    """Append a filled review's ``fraud``/``honest`` verdicts to the label store; return them and the estimate.

    Parameters
    ----------
    run_dir : path
        The run the queue was drawn from (names the verdicts' source, ``review:<run folder>``).
    review_path : path
        The queue with its ``verdict`` column filled (empty or ``unsure`` rows are not labels).
    store : path
        The label store (CSV or Parquet; created when absent). It may not be inside the run directory.
    reviewer : str, optional
        Who reviewed, for rows whose ``reviewer`` column is empty (default ``unknown``).
    time : str or Timestamp, optional
        When the verdicts became known (default: the end of the data the run scored, from its manifest, so
        that a run trained until a later date sees them).

    Returns
    -------
    tuple of (pandas.DataFrame, ReviewEstimate)
        The verdicts appended, and the estimate from the whole review.
    """
    run_dir = Path(run_dir)
    store = Path(store)
    if run_dir.resolve() in store.resolve().parents or store.resolve() == run_dir.resolve():
        raise FraudkitError(f"label store {store} is inside the run directory {run_dir}; keep it beside your data "
                            "(e.g. --store labels.csv)")
    review = read_review(review_path)
    if time is None:
        manifest = run_dir / "manifest.json"
        end = json.loads(manifest.read_text(encoding="utf-8")).get("data", {}).get("end") if manifest.is_file() else None
        if end is None:
            raise FraudkitError(f"{run_dir}: the run's manifest does not say when its data ends; pass --time "
                                "(when the verdicts became known, e.g. 2026-11-30)")
        time = end
    given = review[review["verdict"].isin(VERDICTS)]
    names = given["reviewer"].replace("", np.nan) if "reviewer" in given.columns else pd.Series(np.nan, index=given.index)
    verdicts = pd.DataFrame({"entity_type": "account", "entity_id": given["account_id"].to_numpy(),
                             "label": given["verdict"].to_numpy(), "source": f"review:{run_dir.name}",
                             "time": pd.Timestamp(time), "reviewer": names.fillna(reviewer or "unknown").to_numpy(),
                             "typology": None,
                             "note": given["note"].to_numpy() if "note" in given.columns else None})
    append_labels(store, verdicts)
    return verdicts, estimate_from_review(review)


@dataclass(frozen=True)
class ReviewEstimate:
    """What a review's verdicts estimate (stratified over the queue's strata).

    Attributes
    ----------
    precision, precision_low, precision_high : float
        Share of the run's flagged accounts that are fraud, with its 95 % interval (NaN without a verdict on
        a flagged account).
    prevalence, prevalence_low, prevalence_high : float
        Share of all accounts that are fraud, with its 95 % interval (NaN unless every stratum has a verdict).
    n_verdicts, n_unsure : int
    by_stratum : pandas.DataFrame
        ``stratum, size, reviewed, fraud, honest, unsure, fraud_share``.
    """

    precision: float
    precision_low: float
    precision_high: float
    prevalence: float
    prevalence_low: float
    prevalence_high: float
    n_verdicts: int
    n_unsure: int
    by_stratum: pd.DataFrame

    def describe(self) -> str:
        def pct(x):
            return "n/a" if np.isnan(x) else f"{100 * x:.1f}%"

        lines = [f"{self.n_verdicts} verdict(s), {self.n_unsure} unsure",
                 f"precision of flagged accounts: {pct(self.precision)} "
                 f"(95% interval {pct(self.precision_low)} to {pct(self.precision_high)})",
                 f"fraud prevalence among all accounts: {pct(self.prevalence)} "
                 f"(95% interval {pct(self.prevalence_low)} to {pct(self.prevalence_high)})"]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("precision", "precision_low", "precision_high", "prevalence",
                                           "prevalence_low", "prevalence_high", "n_verdicts", "n_unsure")}
        d["by_stratum"] = self.by_stratum.to_dict(orient="records")
        return json.loads(json.dumps(d, default=float))


def read_review(path) -> pd.DataFrame:
    """Read a filled review queue (CSV); check its verdicts.

    Raises
    ------
    DataValidationError
        Missing columns, or a verdict other than ``fraud``, ``honest``, ``unsure`` or empty (names the file,
        the row and the fix).
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except FileNotFoundError:
        _refuse(path, None, "no such review file", None,
                "pass the CSV `fraudkit review` wrote, with its verdict column filled")
    except UnicodeDecodeError as e:
        _refuse(path, None, f"not UTF-8 text (byte {e.start})", None, "save it as UTF-8 CSV")
    except (ValueError, OSError) as e:
        _refuse(path, None, f"cannot be read as CSV ({str(e).splitlines()[0][:200]})", None,
                "keep the file `fraudkit review` wrote as CSV")
    need = ["account_id", "stratum", "stratum_size", "inclusion_probability", "flagged_combined", "verdict"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        _refuse(path, missing[0], f"missing column(s) {', '.join(missing)}", None,
                "fill the verdict column of the CSV `fraudkit review` wrote and keep its other columns")
    df["account_id"] = df["account_id"].str.lstrip("'")
    v = df["verdict"].str.strip().str.lower()
    bad = ~v.isin([*_VERDICT_VALUES, ""])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        _refuse(path, "verdict", "value not understood", f"row {i + 2}: {df['verdict'].iloc[i]!r}",
                "write fraud, honest or unsure (or leave it empty when not reviewed)", int(bad.sum()))
    bad = ~df["stratum"].isin(STRATA)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        _refuse(path, "stratum", "not a stratum of the review queue", f"row {i + 2}: {df['stratum'].iloc[i]!r}",
                "keep the column as `fraudkit review` wrote it", int(bad.sum()))
    df["verdict"] = v
    df["stratum_size"] = pd.to_numeric(df["stratum_size"], errors="raise").astype(np.int64)
    df["inclusion_probability"] = pd.to_numeric(df["inclusion_probability"], errors="raise")
    df["flagged_combined"] = df["flagged_combined"].str.lower().isin(["true", "1"])
    return df


def estimate_from_review(review: pd.DataFrame) -> ReviewEstimate:
    """Stratified precision and prevalence estimates, with 95 % intervals, from a queue's verdicts.

    Within a stratum the fraud share of its reviewed accounts estimates the stratum's; strata are weighted by
    their sizes. A stratum without a verdict leaves its part unknown: the estimate then covers the strata
    that have verdicts (precision needs at least one flagged stratum; prevalence needs all four, else NaN).

    Examples
    --------
    >>> q = pd.DataFrame({"stratum": ["top_risk"] * 2 + ["random_flagged"] * 2 + ["random_unflagged"] * 2,
    ...                   "stratum_size": [2, 2, 10, 10, 100, 100], "flagged_combined": [True] * 4 + [False] * 2,
    ...                   "verdict": ["fraud", "fraud", "fraud", "honest", "honest", "honest"]})
    >>> round(estimate_from_review(q).precision, 3)
    0.583
    """
    v = review.assign(verdict=review["verdict"].fillna("").str.lower())
    rows = []
    for s in STRATA:
        d = v[v["stratum"] == s]
        size = int(d["stratum_size"].iloc[0]) if len(d) else 0
        fr, ho, un = (int((d["verdict"] == x).sum()) for x in ("fraud", "honest", "unsure"))
        rows.append({"stratum": s, "size": size, "reviewed": fr + ho, "fraud": fr, "honest": ho, "unsure": un,
                     "fraud_share": fr / (fr + ho) if fr + ho else np.nan})
    by = pd.DataFrame(rows)
    # the uncertain stratum holds flagged and unflagged accounts: split it by the flag
    unc = v[v["stratum"] == "uncertain"]
    parts = []
    for s, d in (("top_risk", v[v["stratum"] == "top_risk"]), ("random_flagged", v[v["stratum"] == "random_flagged"]),
                 ("uncertain_flagged", unc[unc["flagged_combined"].astype(bool)]),
                 ("uncertain_unflagged", unc[~unc["flagged_combined"].astype(bool)]),
                 ("random_unflagged", v[v["stratum"] == "random_unflagged"])):
        # the queue lists every account of a census stratum (top risk, uncertain): its size is its rows
        size = len(d) if s.startswith(("top_risk", "uncertain")) else (int(d["stratum_size"].iloc[0]) if len(d) else 0)
        parts.append((s, size, int((d["verdict"] == "fraud").sum()), int((d["verdict"] == "honest").sum())))
    prec = _stratified([p for p in parts if p[0] in ("top_risk", "random_flagged", "uncertain_flagged")])
    prev = _stratified(parts, need_all=True)
    n_unsure = int((v["verdict"] == "unsure").sum())
    return ReviewEstimate(*prec, *prev, n_verdicts=int(v["verdict"].isin(VERDICTS).sum()), n_unsure=n_unsure,
                          by_stratum=by)


@dataclass(frozen=True)
class ShareEstimate:
    """The fraud share of a set of accounts, estimated from a review's verdicts (:func:`estimate_share`).

    Attributes
    ----------
    share, low, high : float
        The estimated share of fraud among the set's accounts and its 95 % interval (NaN when no reviewed
        account is in the set).
    accounts : int
        Accounts in the set.
    reviewed : int
        Reviewed accounts (``fraud`` or ``honest``) in the set.
    outside : int
        Accounts of the set the review could not have drawn (not in the reviewed run's frame); the estimate
        covers the others.
    variance : float
        Sampling variance of ``share`` (0 for a census).
    """

    share: float
    low: float
    high: float
    accounts: int
    reviewed: int
    outside: int = 0
    variance: float = np.nan

    @property
    def fraud(self) -> float:
        """Estimated fraud accounts in the set (share × accounts)."""
        return self.share * self.accounts

    def describe(self) -> str:
        if not np.isfinite(self.share):
            return f"no reviewed account among these {self.accounts:,}"
        return (f"{self.share:.1%} (95% interval {self.low:.1%} to {self.high:.1%}; "
                f"{self.reviewed:,} reviewed of {self.accounts:,})")


def estimate_share(review: pd.DataFrame, accounts, *, frame=None) -> ShareEstimate:
    """The fraud share of any set of accounts, from a stratified review's verdicts (domain estimation).

    Every account of the reviewed run sat in exactly one stratum, and a stratum's reviewed accounts are a
    simple random sample of it (a census stratum lists all its accounts), so each reviewed account stands for
    ``stratum size / reviewed in the stratum`` accounts. The share of fraud in a set *D* (a stage's flags, the
    accounts an action touches, every account) is the ratio estimate
    ``sum(w * fraud * in_D) / sum(w * in_D)`` over the reviewed accounts, with its variance by linearisation
    (stratified, with the finite-population correction; Särndal, Swensson & Wretman 1992, §5.6 and §10.3) and
    a 95 % Wilson interval on Kish's effective sample size. For the run's flagged accounts it equals
    :func:`estimate_from_review`'s precision; the same review estimates the set of a later run on the same
    accounts.

    Parameters
    ----------
    review : pandas.DataFrame
        A review queue with its ``verdict`` column filled (:func:`read_review`); ``unsure`` and empty verdicts
        are left out.
    accounts : iterable
        Ids of the accounts of the set.
    frame : iterable, optional
        Ids of every account the reviewed run scored; set members outside it are counted in ``outside``
        and left out of the estimate.

    Returns
    -------
    ShareEstimate

    Examples
    --------
    >>> q = pd.DataFrame({"account_id": list("abcdef"),
    ...                   "stratum": ["top_risk"] * 2 + ["random_flagged"] * 2 + ["random_unflagged"] * 2,
    ...                   "stratum_size": [2, 2, 10, 10, 100, 100], "flagged_combined": [True] * 4 + [False] * 2,
    ...                   "verdict": ["fraud", "fraud", "fraud", "honest", "honest", "honest"]})
    >>> e = estimate_share(q, ["a", "b", "c", "d"] + [f"x{i}" for i in range(8)])
    >>> round(e.share, 3), e.reviewed
    (0.583, 4)
    """
    ids = pd.Index(pd.Series(list(accounts), dtype=object).astype(str).unique())
    outside = 0
    if frame is not None:
        inside = ids.isin(pd.Index(pd.Series(list(frame), dtype=object).astype(str)))
        outside = int((~inside).sum())
        ids = ids[inside]
    v = review.assign(account_id=review["account_id"].astype(str),
                      verdict=review["verdict"].fillna("").astype(str).str.lower())
    v = v[v["verdict"].isin(VERDICTS)]
    # a census stratum lists all its accounts: its size is its rows in the queue
    census = review["stratum"].isin(("top_risk", "uncertain"))
    rows = review.loc[census].groupby("stratum").size()
    size = v["stratum"].map(lambda s: rows.get(s, 0)).where(v["stratum"].isin(("top_risk", "uncertain")),
                                                             v["stratum_size"].astype(float))
    m = v.groupby("stratum")["verdict"].transform("size")
    w = (size / m).to_numpy(float)
    y = (v["verdict"] == "fraud").to_numpy(float)
    d = v["account_id"].isin(ids).to_numpy(float)
    reviewed = int(d.sum())
    if not reviewed:
        return ShareEstimate(np.nan, np.nan, np.nan, len(ids), 0, outside)
    n_hat = float((w * d).sum())
    share = float((w * y * d).sum() / n_hat)
    z = (y - share) * d                      # linearised ratio: residuals of the set's reviewed accounts
    var = 0.0
    frame_h = pd.DataFrame({"s": v["stratum"].to_numpy(), "z": z, "y": y, "d": d, "N": size.to_numpy(float)})
    for s, part in frame_h.groupby("s"):
        n_h, big_n = len(part), float(part["N"].iloc[0])
        fpc = max(0.0, 1 - n_h / big_n) if big_n else 0.0
        if fpc > 0 and n_h > 1:
            zz = part["z"].to_numpy()
            s2 = float(zz.var(ddof=1)) if np.ptp(zz) > 0 else 0.0
            # a sample that saw no fraud (or only fraud) in the set still leaves doubt: floor the variance with
            # the set's fraud share smoothed by half a case each way (Agresti & Coull's idea), so a stratum of
            # 50 honest verdicts does not claim there is no fraud among its thousands of accounts
            in_d = part["d"].to_numpy()
            if in_d.sum():
                p_adj = (float((part["y"].to_numpy() * in_d).sum()) + 0.5) / (float(in_d.sum()) + 1.0)
                s2 = max(s2, float(in_d.mean()) * p_adj * (1 - p_adj) * n_h / (n_h - 1))
            var += big_n ** 2 * fpc * s2 / n_h
    var /= n_hat ** 2
    if var <= 0:
        if all(max(0.0, 1 - len(g) / float(g["N"].iloc[0])) == 0
               for _, g in pd.DataFrame({"s": v["stratum"].to_numpy(), "N": size.to_numpy(float)})[d > 0]
               .groupby("s")):
            return ShareEstimate(share, share, share, len(ids), reviewed, outside, 0.0)
        n_eff = float(reviewed)
    else:
        n_eff = share * (1 - share) / var if 0 < share < 1 else float(reviewed)
    lo, hi = wilson_bounds(share, max(1.0, n_eff))
    return ShareEstimate(share, lo, hi, len(ids), reviewed, outside, float(var))


def estimate_recall(flagged: ShareEstimate, unflagged: ShareEstimate) -> tuple:
    """Recall ``(estimate, low, high)`` from the fraud shares of the flagged and the unflagged accounts.

    Fraud flagged ``A = share × accounts`` of the flagged set and fraud missed ``B`` of the unflagged set are
    estimated from disjoint strata, so independently; recall is ``A / (A + B)``. Its interval joins the two
    intervals at their worst: ``A_low / (A_low + B_high)`` to ``A_high / (A_high + B_low)`` — conservative, and
    honest when the unflagged sample saw no fraud at all (B = 0 is a point, not a certainty).

    Examples
    --------
    >>> f = ShareEstimate(0.8, 0.7, 0.9, 100, 50)
    >>> u = ShareEstimate(0.0, 0.0, 0.02, 1000, 50)
    >>> [round(x, 3) for x in estimate_recall(f, u)]
    [1.0, 0.778, 1.0]
    """
    a, b = flagged.share * flagged.accounts, unflagged.share * unflagged.accounts
    if not (np.isfinite(a) and np.isfinite(b)) or a + b <= 0:
        return (np.nan, np.nan, np.nan)
    a_lo, a_hi = flagged.low * flagged.accounts, flagged.high * flagged.accounts
    b_lo, b_hi = unflagged.low * unflagged.accounts, unflagged.high * unflagged.accounts
    low = a_lo / (a_lo + b_hi) if a_lo + b_hi > 0 else 0.0
    high = a_hi / (a_hi + b_lo) if a_hi + b_lo > 0 else 1.0
    return (float(a / (a + b)), float(low), float(high))


def verdicts_from_labels(review: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Fill a queue's verdicts from a labels table (a simulated reviewer, for benchmarks and tests).

    An account labelled with an attacker typology is ``fraud``; every other account is ``honest``.
    """
    lab = labels[(labels["entity_type"] == "account") & labels["typology"].isin(FRAUD_TYPOLOGIES)]
    fraud = set(lab["entity_id"].astype(str))
    return review.assign(verdict=np.where(review["account_id"].astype(str).isin(fraud), "fraud", "honest"),
                         reviewer="simulated")


def _stratified(parts, *, need_all=False):
    """(estimate, low, high) of the size-weighted fraud share over ``parts`` = (name, size, fraud, honest).

    Each part's reviewed accounts are a simple random sample of it (a census when all are reviewed: the finite
    population correction then removes its sampling error).
    """
    parts = [p for p in parts if p[1] > 0]
    if not parts or (need_all and any(p[2] + p[3] == 0 for p in parts)):
        return (np.nan, np.nan, np.nan)
    parts = [p for p in parts if p[2] + p[3] > 0]
    total = sum(p[1] for p in parts)
    est, var, exact = 0.0, 0.0, True
    for _, size, fr, ho in parts:
        m = fr + ho
        p = fr / m
        w = size / total
        est += w * p
        fpc = max(0.0, 1 - m / size)
        exact = exact and fpc == 0
        if fpc > 0 and m > 1:
            var += w * w * fpc * p * (1 - p) / (m - 1)
    if exact:
        return (float(est), float(est), float(est))
    n_all = sum(p[2] + p[3] for p in parts)
    # Kish's effective sample size (the reviewed count when the sample shows no spread, e.g. all fraud)
    n_eff = est * (1 - est) / var if var > 0 else n_all
    lo, hi = wilson_bounds(est, max(1.0, n_eff))
    return (float(est), float(lo), float(hi))


def _explanations(run_dir: Path, ids: set) -> pd.DataFrame:
    """Why each account is suspicious, from the run's outputs (empty text where an output is absent)."""
    out = pd.DataFrame({"account_id": sorted(ids)})
    scores = run_dir / "scores.parquet"
    if scores.is_file():
        s = pd.read_parquet(scores, columns=["entity_type", "entity_id", "stage", "method", "flagged", "reason"])
        s = s[(s["entity_type"] == "account") & s["entity_id"].astype(str).isin(ids)]
        s = s.assign(account_id=s["entity_id"].astype(str), reason=s["reason"].fillna("").astype(str))
        flagged = s[s["flagged"].fillna(False).astype(bool) & (s["reason"] != "")]

        def joined(mask, sep="; "):
            d = flagged[mask]
            return d.groupby("account_id")["reason"].agg(lambda r: sep.join(dict.fromkeys(r)))

        out["rules"] = out["account_id"].map(joined(flagged["stage"] == "rules")).fillna("")
        out["model_reasons"] = out["account_id"].map(
            joined((flagged["stage"] == "behaviour") & flagged["method"].isin(["logistic", "boosting"]))).fillna("")
        out["group_reason"] = out["account_id"].map(
            joined((flagged["stage"] == "group") & (flagged["method"] != "group"))).fillna("")
    else:
        out["rules"] = out["model_reasons"] = out["group_reason"] = ""
    ex = run_dir / "graph" / "explanations.parquet"
    if ex.is_file():
        e = pd.read_parquet(ex)
        e = e.assign(account_id=e["account_id"].astype(str)).drop_duplicates("account_id")
        e = e.set_index("account_id")
        out["community"] = out["account_id"].map(
            (e["view"].astype(str) + " view, community " + e["community"].astype(str) + ": "
             + e["community_reason"].fillna("").astype(str))).fillna("")
        out["shared_resources"] = out["account_id"].map(e["shared_entities"].fillna("").astype(str)).fillna("")
        path = np.where(e["path_length"].fillna(-1).astype(int) > 0,
                        e["path"].fillna("").astype(str) + " (" + e["path_length"].fillna(0).astype(int).astype(str)
                        + " hops)", np.where(e["path_length"].fillna(-1).astype(int) == 0, "is a seed", ""))
        out["path_to_seed"] = out["account_id"].map(pd.Series(path, index=e.index)).fillna("")
    else:
        out["community"] = out["shared_resources"] = out["path_to_seed"] = ""
    return out


def _refuse(file, column, problem, example, fix, n_rows=0):
    """Raise the one-issue :class:`DataValidationError` for ``file`` (a message with the column, an example and the fix)."""
    raise DataValidationError([ValidationIssue(str(file), column, problem, example, fix, n_rows)])
