"""Plotting helpers for the step notebooks and the report index.

Every chart a stakeholder sees has a title and labelled axes; these helpers
take them as required arguments and :func:`check_labelled` refuses a figure
without them. Figures are built with :class:`matplotlib.figure.Figure`
(not ``pyplot``), so a notebook displays each one exactly once, nothing is
kept alive in a global figure registry, and the same data gives the same
PNG bytes (no timestamps; fixed style).

Used by ``notebooks/01..05`` and :mod:`fraudkit.report.build` (the index page).
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = [
    "set_style",
    "new_figure",
    "label",
    "check_labelled",
    "line_over_time",
    "bar",
    "hist",
    "heatmap",
    "to_png_bytes",
    "to_data_uri",
]

_STYLE_APPLIED = False
PALETTE = "colorblind"
"""Seaborn palette used everywhere (distinguishable for colour-blind readers)."""


def set_style() -> None:
    """Apply the fraudkit look: seaborn ``whitegrid``, colour-blind palette, fixed DPI.

    Idempotent; every helper calls it. Also removes the software/date
    metadata matplotlib writes into images, so reports are byte-reproducible.
    """
    global _STYLE_APPLIED
    if _STYLE_APPLIED:
        return
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(style="whitegrid", palette=PALETTE, context="notebook")
    mpl.rcParams.update({
        "figure.dpi": 96,
        "savefig.dpi": 96,
        "figure.autolayout": False,
        "axes.titleweight": "bold",
        "svg.hashsalt": "fraudkit",
        "path.simplify": True,
    })
    try:  # notebooks: PNG output without metadata chunks that vary by version
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png", metadata={"Software": None})
    except Exception:  # outside IPython there is nothing to configure
        pass
    _STYLE_APPLIED = True


def new_figure(*, title: str, xlabel: str, ylabel: str, figsize=(8.0, 3.6)):
    """Return ``(fig, ax)``: a fresh figure whose axes already carry the labels.

    Parameters
    ----------
    title, xlabel, ylabel : str
        Required, non-empty: a chart nobody can read is not shown.
    figsize : tuple of float, default=(8.0, 3.6)
        Inches.

    Examples
    --------
    >>> fig, ax = new_figure(title="Likes per day", xlabel="day", ylabel="likes")
    >>> ax.get_title()
    'Likes per day'
    """
    set_style()
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    label(ax, title=title, xlabel=xlabel, ylabel=ylabel)
    return fig, ax


def label(ax, *, title: str, xlabel: str, ylabel: str):
    """Set the title and axis labels of ``ax``; reject empty ones."""
    for name, value in (("title", title), ("xlabel", xlabel), ("ylabel", ylabel)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"a chart needs a non-empty {name}; got {value!r}")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return ax


def check_labelled(fig) -> Figure:
    """Raise ``ValueError`` unless every visible axes of ``fig`` has a title and both axis labels.

    Colour-bar axes (created by ``fig.colorbar``) are exempt from the title.
    """
    for i, ax in enumerate(fig.get_axes()):
        if not ax.get_visible():
            continue
        is_colorbar = hasattr(ax, "_colorbar")
        missing = [n for n, v in (("title", ax.get_title()), ("xlabel", ax.get_xlabel()),
                                  ("ylabel", ax.get_ylabel())) if not v.strip()]
        if is_colorbar:
            missing = [m for m in missing if m == "ylabel" and not ax.get_xlabel().strip()]
        if missing:
            raise ValueError(f"axes {i} of the figure has no {', '.join(missing)}; "
                             "label every chart (fraudkit.report.plots.label)")
    return fig


def line_over_time(df: pd.DataFrame, *, x: str, y: str, hue: str | None = None, title: str,
                   xlabel: str, ylabel: str, thresholds: dict | None = None, marker: str = "o",
                   figsize=(8.0, 3.6)) -> Figure:
    """One line per ``hue`` value of ``y`` over ``x`` (usually a date).

    Parameters
    ----------
    df : DataFrame
        Long table with columns ``x``, ``y`` and optionally ``hue``; not modified.
    thresholds : dict of str -> float, optional
        Horizontal reference lines, e.g. ``{"early warning": 0.6}``; labelled in the legend.

    Examples
    --------
    >>> df = pd.DataFrame({"day": pd.date_range("2024-01-01", periods=3), "n": [1, 5, 2]})
    >>> fig = line_over_time(df, x="day", y="n", title="t", xlabel="day", ylabel="n")
    >>> len(fig.axes[0].lines)
    1
    """
    fig, ax = new_figure(title=title, xlabel=xlabel, ylabel=ylabel, figsize=figsize)
    groups = [(None, df)] if hue is None else sorted(df.groupby(hue, sort=True), key=lambda kv: str(kv[0]))
    for name, part in groups:
        part = part.sort_values(x)
        ax.plot(part[x], part[y], marker=marker, markersize=3, linewidth=1.4,
                label=None if name is None else str(name))
    for i, (name, value) in enumerate((thresholds or {}).items()):
        ax.axhline(value, linestyle="--", linewidth=1, color=f"C{(i + 3) % 10}", label=f"{name} ({value:g})")
    if hue is not None or thresholds:
        ax.legend(loc="best", fontsize="small", frameon=True)
    if pd.api.types.is_datetime64_any_dtype(df[x]):
        fig.autofmt_xdate()
    return check_labelled(fig)


def bar(df: pd.DataFrame, *, x: str, y: str, hue: str | None = None, title: str, xlabel: str,
        ylabel: str, horizontal: bool = False, figsize=(8.0, 3.6), value_format: str | None = None) -> Figure:
    """A (grouped) bar chart of ``y`` by category ``x``, categories in the order given.

    Examples
    --------
    >>> df = pd.DataFrame({"typology": ["a", "b"], "recall": [0.5, 0.9]})
    >>> fig = bar(df, x="typology", y="recall", title="Recall", xlabel="typology", ylabel="recall")
    >>> len(fig.axes[0].patches)
    2
    """
    fig, ax = new_figure(title=title, xlabel=xlabel, ylabel=ylabel, figsize=figsize)
    cats = list(dict.fromkeys(df[x].astype(str)))
    pos = np.arange(len(cats))
    hues = [None] if hue is None else list(dict.fromkeys(df[hue].astype(str)))
    width = 0.8 / len(hues)
    for j, h in enumerate(hues):
        part = df if h is None else df[df[hue].astype(str) == h]
        vals = part.set_index(part[x].astype(str))[y].reindex(cats).to_numpy(dtype=float)
        offs = pos - 0.4 + width * (j + 0.5)
        bars = (ax.barh(offs, np.nan_to_num(vals), height=width, label=h) if horizontal
                else ax.bar(offs, np.nan_to_num(vals), width=width, label=h))
        if value_format:
            ax.bar_label(bars, labels=["" if np.isnan(v) else format(v, value_format) for v in vals],
                         fontsize="x-small", padding=2)
    if horizontal:
        ax.set_yticks(pos, cats)
        ax.invert_yaxis()
    else:
        ax.set_xticks(pos, cats, rotation=30 if max((len(c) for c in cats), default=0) > 8 else 0,
                      ha="right" if max((len(c) for c in cats), default=0) > 8 else "center")
    if hue is not None:
        ax.legend(loc="best", fontsize="small")
    return check_labelled(fig)


def hist(values, *, title: str, xlabel: str, ylabel: str = "count", bins: int = 40, log: bool = False,
         marks: dict | None = None, figsize=(8.0, 3.2)) -> Figure:
    """Histogram of ``values`` with optional vertical marks (``{"threshold": 0.5}``)."""
    fig, ax = new_figure(title=title, xlabel=xlabel, ylabel=ylabel, figsize=figsize)
    v = pd.Series(values, dtype=float).dropna()
    ax.hist(v, bins=bins, log=log, color="C0", alpha=0.85)
    for i, (name, value) in enumerate((marks or {}).items()):
        ax.axvline(value, linestyle="--", color=f"C{(i + 3) % 10}", label=f"{name} ({value:.3g})")
    if marks:
        ax.legend(loc="best", fontsize="small")
    return check_labelled(fig)


def heatmap(table: pd.DataFrame, *, title: str, xlabel: str, ylabel: str, fmt: str = ".2f",
            vmin: float | None = 0.0, vmax: float | None = 1.0, cmap: str = "rocket_r",
            figsize=None) -> Figure:
    """Annotated heat map of a numeric table (rows = ``ylabel``, columns = ``xlabel``)."""
    import seaborn as sns

    h, w = table.shape
    fig, ax = new_figure(title=title, xlabel=xlabel, ylabel=ylabel,
                         figsize=figsize or (max(5.0, 1.1 * w + 3), max(2.4, 0.42 * h + 1.4)))
    sns.heatmap(table.astype(float), ax=ax, annot=True, fmt=fmt, vmin=vmin, vmax=vmax, cmap=cmap,
                cbar_kws={"label": title.split(":")[0]}, linewidths=0.5)
    label(ax, title=title, xlabel=xlabel, ylabel=ylabel)
    return check_labelled(fig)


def to_png_bytes(fig) -> bytes:
    """Render ``fig`` to PNG bytes without metadata (byte-reproducible)."""
    check_labelled(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def to_data_uri(fig) -> str:
    """``data:image/png;base64,...`` for embedding ``fig`` in an offline HTML page."""
    return "data:image/png;base64," + base64.b64encode(to_png_bytes(fig)).decode("ascii")
