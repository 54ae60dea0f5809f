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
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = [
    "set_style",
    "cjk_fonts",
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
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#000000", "#D55E00", "#F0E442"]
"""Okabe–Ito colours, ordered so the first four are distinct hues (blue, orange, green, purple) for
colour-blind readers, and orange and vermillion never both among the first six series."""

CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei",
             "WenQuanYi Micro Hei", "Droid Sans Fallback", "AR PL UMing CN", "SimHei", "Microsoft YaHei",
             "PingFang SC")
"""Fonts with Chinese glyphs, tried in order (Debian: ``apt-get install fonts-noto-cjk``); DejaVu Sans is the
fallback."""

RECENT_DAYS = 90
"""Charts over a long daily history show this many recent days, with the whole history above as context."""


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
        "font.sans-serif": [*cjk_fonts(), "DejaVu Sans", "Arial", "sans-serif"],
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


def cjk_fonts() -> list:
    """The installed fonts of :data:`CJK_FONTS` (matplotlib falls back through them glyph by glyph)."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    if not installed & set(CJK_FONTS):
        # matplotlib's font cache predates a font installed later (setup installs fonts-noto-cjk): add them
        for path in font_manager.findSystemFonts():
            if any(k in Path(path).name.lower() for k in ("cjk", "wqy", "sourcehan")):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue  # an unreadable font file: fall back to the next
        installed = {f.name for f in font_manager.fontManager.ttflist}
    return [f for f in CJK_FONTS if f in installed]


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


def _legend_outside(ax, **kw) -> None:
    """The legend right of the axes, outside the data (constrained layout makes room for it)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="small", frameon=False, **kw)


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
                   figsize=(8.0, 3.6), recent_days: int | None = RECENT_DAYS, log: bool = False) -> Figure:
    """One line per ``hue`` value of ``y`` over ``x`` (usually a date).

    Parameters
    ----------
    df : DataFrame
        Long table with columns ``x``, ``y`` and optionally ``hue``; not modified.
    thresholds : dict of str -> float, optional
        Horizontal reference lines, e.g. ``{"early warning": 0.6}``; labelled in the legend.
    recent_days : int or None, default=RECENT_DAYS
        When ``x`` is a date spanning more than twice this many days, the main chart shows the last
        ``recent_days`` days and a small chart above it the whole history as context (shaded: the window shown).
    log : bool, default=False
        Logarithmic ``y`` axis.

    The legend sits right of the chart, outside the data.

    Examples
    --------
    >>> df = pd.DataFrame({"day": pd.date_range("2024-01-01", periods=3), "n": [1, 5, 2]})
    >>> fig = line_over_time(df, x="day", y="n", title="t", xlabel="day", ylabel="n")
    >>> len(fig.axes[0].lines)
    1
    >>> long = pd.DataFrame({"day": pd.date_range("2020-01-01", periods=1000), "n": 1})
    >>> [ax.get_title() for ax in line_over_time(long, x="day", y="n", title="t", xlabel="d", ylabel="n").axes]
    ['t: whole history (context)', 't: last 90 days']
    """
    is_time = pd.api.types.is_datetime64_any_dtype(df[x])
    span = (df[x].max() - df[x].min()) if is_time and len(df) else None
    split = recent_days is not None and span is not None and span > pd.Timedelta(days=2 * int(recent_days))
    groups = [(None, df)] if hue is None else sorted(df.groupby(hue, sort=True), key=lambda kv: str(kv[0]))
    if split:
        set_style()
        fig = Figure(figsize=(figsize[0], figsize[1] * 1.45), layout="constrained")
        ctx_ax, ax = fig.subplots(2, 1, height_ratios=[1, 2.6])
        start = df[x].max() - pd.Timedelta(days=int(recent_days))
        label(ctx_ax, title=f"{title}: whole history (context)", xlabel=xlabel, ylabel=ylabel)
        label(ax, title=f"{title}: last {int(recent_days)} days", xlabel=xlabel, ylabel=ylabel)
        for i, (name, part) in enumerate(groups):
            part = part.sort_values(x)
            ctx_ax.plot(part[x], part[y], linewidth=0.8, color=f"C{i % 10}")
        ctx_ax.axvspan(start, df[x].max(), color="0.85", zorder=0)
        if log:
            ctx_ax.set_yscale("log")
        ctx_ax.tick_params(labelsize="x-small")
        ctx_ax.title.set_fontsize("small")
        df = df[df[x] >= start]
        groups = [(None, df)] if hue is None else sorted(df.groupby(hue, sort=True), key=lambda kv: str(kv[0]))
    else:
        fig, ax = new_figure(title=title, xlabel=xlabel, ylabel=ylabel, figsize=figsize)
    for i, (name, part) in enumerate(groups):
        part = part.sort_values(x)
        ax.plot(part[x], part[y], marker=marker, markersize=3, linewidth=1.4, color=f"C{i % 10}",
                label=None if name is None else str(name))
    for i, (name, value) in enumerate((thresholds or {}).items()):
        ax.axhline(value, linestyle="--", linewidth=1, color="0.3", label=f"{name} ({value:g})")
    if log:
        ax.set_yscale("log")
    if hue is not None or thresholds:
        _legend_outside(ax)
    if is_time:
        for a in fig.axes:
            for lab in a.get_xticklabels():
                lab.set_rotation(30)
                lab.set_horizontalalignment("right")
    return check_labelled(fig)


def bar(df: pd.DataFrame, *, x: str, y: str, hue: str | None = None, title: str, xlabel: str,
        ylabel: str, horizontal: bool = False, figsize=(8.0, 3.6), value_format: str | None = None,
        log: bool | None = None) -> Figure:
    """A (grouped) bar chart of ``y`` by category ``x``, categories in the order given.

    ``log`` (default: when the positive values span more than two orders of magnitude) puts the
    value axis on a log scale, so small counts stay visible beside large ones; the legend sits
    outside the bars and value labels are kept inside the figure.

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
    vals_all = pd.to_numeric(df[y], errors="coerce").to_numpy(dtype=float)
    pos_vals = vals_all[np.isfinite(vals_all) & (vals_all > 0)]
    if log is None:
        log = len(pos_vals) > 1 and pos_vals.min() >= 1 and pos_vals.max() / pos_vals.min() > 100
    if log:
        (ax.set_xscale if horizontal else ax.set_yscale)("log")
        (ax.set_xlabel if horizontal else ax.set_ylabel)(
            (ax.get_xlabel() if horizontal else ax.get_ylabel()) + " (log scale)")
    if value_format:
        ax.margins(**({"x": 0.12} if horizontal else {"y": 0.12}))  # room for the value labels
    if horizontal:
        ax.set_yticks(pos, cats)
        ax.invert_yaxis()
    else:
        ax.set_xticks(pos, cats, rotation=30 if max((len(c) for c in cats), default=0) > 8 else 0,
                      ha="right" if max((len(c) for c in cats), default=0) > 8 else "center")
    if hue is not None:
        _legend_outside(ax, title=hue)
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
        _legend_outside(ax)
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
