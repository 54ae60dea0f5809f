"""What a step-notebook cell shows: a table, a chart, a note, a graph, or why a section is not available.

Every view function of the report (:mod:`fraudkit.report.perception_views` …
:mod:`fraudkit.report.evaluation_views`) returns one of these small objects. A
notebook cell only calls the view; the cell's value displays itself in Jupyter
(and under papermill) through ``_ipython_display_``. Outside Jupyter the objects
are plain data: a test reads ``Table.frame`` or ``Unavailable.why`` directly.

* :class:`Table` — a DataFrame shown with personal-data columns masked, columns named in words
  and values formatted for people (:func:`fraudkit.report.tables.format_frame`), every value
  and header HTML-escaped, an optional caption and a row limit, in a box that scrolls
  sideways when the table is wider than the page;
* :class:`Chart` — a :class:`matplotlib.figure.Figure` from :mod:`fraudkit.report.plots`
  (checked for a title and axis labels when shown);
* :class:`Note` — a short highlighted sentence (``info``, ``warn`` or ``ok``);
* :class:`Unavailable` — the section cannot be shown, and why (a missing table,
  a skipped step); never made-up content;
* :class:`Text` — a Markdown sentence (``<`` and ``&`` in it are shown as text);
* :class:`Graph` — a whole HTML document (a pyvis graph) in a sandboxed iframe;
* :class:`Shown` — several of the above, shown in order (a section with a chart and its table).
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass

import pandas as pd

from fraudkit.report.html import embed_html, mask_html
from fraudkit.report.masking import mask_frame
from fraudkit.report.plots import check_labelled
from fraudkit.report.tables import format_frame, text_columns
from fraudkit.report.viz import FRAME_HEIGHT

__all__ = ["NOTE_CLASS", "TABLE_CLASS", "Table", "Chart", "Note", "Unavailable", "Text", "Graph", "Shown", "show"]

NOTE_CLASS = "fk-note"
"""CSS class of the notes (the page template styles it)."""

TABLE_CLASS = "fk-table"
"""CSS class of the box around every table: it scrolls sideways inside the page column when the table is wide."""


@dataclass(frozen=True, eq=False)
class Table:
    """A table to show: ``frame`` (first ``max_rows`` rows), personal-data columns masked.

    Parameters
    ----------
    frame : DataFrame
        Not modified; masking and formatting happen on a copy when shown.
    caption : str, optional
        Shown above the table; the row count is added when rows are cut.
    max_rows : int, default=20
    floatfmt : str, optional
        Format of float columns (default: :func:`fraudkit.report.tables.format_value`'s).
    mask : bool, default=True
        Mask personal-data columns (:func:`fraudkit.report.masking.mask_frame`).

    Examples
    --------
    >>> t = Table(pd.DataFrame({"n": [1.5, 2.0]}), caption="Two rows")
    >>> "<caption>Two rows</caption>" in t.html() and ">1.50<" in t.html() and ">2.00<" in t.html()
    True
    """

    frame: pd.DataFrame
    caption: str | None = None
    max_rows: int = 20
    floatfmt: str | None = None
    mask: bool = True

    def html(self) -> str:
        """The table as HTML (masked, formatted, captioned, in a sideways-scrolling box), as the report shows it."""
        raw = self._raw()
        view = format_frame(raw)
        n = len(self.frame)
        left = [view.columns[i] for i, c in enumerate(raw.columns) if c in set(text_columns(raw))]
        # every value and header is escaped: the data's free text (names, addresses) is never markup
        styler = (view.style.hide(axis="index").format(na_rep="–", escape="html")
                  .format_index(escape="html", axis=1))
        if left:  # text reads from the left, numbers line up on the right
            styler = styler.set_properties(subset=left, **{"text-align": "left"}).set_table_styles(
                [{"selector": f"th.col_heading.col{list(view.columns).index(c)}", "props": "text-align: left"}
                 for c in left], overwrite=False)
        if self.caption or n > self.max_rows:
            cap = (self.caption or "") + (f" (first {self.max_rows} of {n:,} rows)" if n > self.max_rows else "")
            styler = styler.set_caption(html.escape(cap.strip()))
        # a table id from its content: pandas otherwise draws a random uuid (the report must be reproducible),
        # and two tables of a page must not share one (their per-cell styles would apply to each other)
        uid = hashlib.sha256((view.to_csv() + str(self.caption)).encode()).hexdigest()[:10]
        return f'<div class="{TABLE_CLASS}">{styler.set_uuid("fk" + uid).to_html()}</div>'

    def text(self) -> str:
        """Plain-text form (what a terminal shows)."""
        return self._view().to_string(max_rows=self.max_rows, index=False)

    def _view(self) -> pd.DataFrame:
        return format_frame(self._raw())

    def _raw(self) -> pd.DataFrame:
        view = mask_frame(self.frame) if self.mask else self.frame
        view = view.head(self.max_rows)
        if self.floatfmt is not None:
            view = view.assign(**{c: view[c].map(lambda v: "–" if pd.isna(v) else self.floatfmt.format(v))
                                  for c in view.columns if pd.api.types.is_float_dtype(view[c])})
        return view

    def _repr_html_(self) -> str:
        return self.html()

    def _ipython_display_(self) -> None:
        _display_html(self.html(), self.text())


@dataclass(frozen=True, eq=False)
class Chart:
    """A figure built by :mod:`fraudkit.report.plots`; it must carry a title and axis labels.

    Examples
    --------
    >>> from fraudkit.report import plots
    >>> Chart(plots.hist([1, 2, 2], title="t", xlabel="x", ylabel="y")).figure.axes[0].get_title()
    't'
    """

    figure: object

    def __post_init__(self):
        check_labelled(self.figure)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.figure)


@dataclass(frozen=True)
class Note:
    """A short highlighted note; ``kind`` is ``info``, ``warn`` or ``ok``. Text in `backticks` shows as code.

    Examples
    --------
    >>> Note("No day crossed the threshold.", kind="ok").html()
    '<div class="fk-note fk-note-ok">No day crossed the threshold.</div>'
    """

    text: str
    kind: str = "info"

    def html(self) -> str:
        return f'<div class="{NOTE_CLASS} {NOTE_CLASS}-{html.escape(self.kind)}">{_md_code(self.text)}</div>'

    def _repr_html_(self) -> str:
        return self.html()

    def _ipython_display_(self) -> None:
        _display_html(self.html(), self.text)


@dataclass(frozen=True)
class Unavailable:
    """A section that cannot be shown: ``what`` it would show and ``why`` not (a missing table, a skipped step).

    Examples
    --------
    >>> u = Unavailable("lists", "the dataset has no list_entries table")
    >>> str(u)
    'Not available: lists. the dataset has no list_entries table.'
    """

    what: str
    why: str

    def html(self) -> str:
        return (f'<div class="{NOTE_CLASS} {NOTE_CLASS}-na"><strong>Not available: {html.escape(self.what)}.</strong> '
                f"{_md_code(self.why)}.</div>")

    def __str__(self) -> str:
        return f"Not available: {self.what}. {self.why}."

    def _repr_html_(self) -> str:
        return self.html()

    def _ipython_display_(self) -> None:
        _display_html(self.html(), str(self))


@dataclass(frozen=True)
class Text:
    """A Markdown sentence (a headline, the day the monitors report on).

    Examples
    --------
    >>> Text("Monitors report on **2024-11-11**.").markdown
    'Monitors report on **2024-11-11**.'
    """

    markdown: str

    def _repr_markdown_(self) -> str:
        # Markdown passes raw HTML through: a name from the data shows as text, never as markup
        return html.escape(self.markdown, quote=False)

    def _ipython_display_(self) -> None:
        from IPython.display import Markdown, display

        display(Markdown(self._repr_markdown_()))


@dataclass(frozen=True)
class Graph:
    """A whole HTML document (a pyvis graph) shown in a sandboxed iframe, offline and masked."""

    document: str
    title: str
    height: int = FRAME_HEIGHT

    def html(self) -> str:
        return mask_html(embed_html(self.document, title=self.title, height=self.height))

    def _repr_html_(self) -> str:
        return self.html()

    def _ipython_display_(self) -> None:
        _display_html(self.html(), f"[interactive graph: {self.title}]")


class Shown(tuple):
    """Several things to show, in order: a section's chart and its tables, or notes.

    A tuple of :class:`Table`, :class:`Chart`, :class:`Note`, :class:`Unavailable`,
    :class:`Text` and :class:`Graph` (nested ``Shown`` are flattened).

    Examples
    --------
    >>> s = Shown(Note("a"), Shown(Note("b")), Unavailable("c", "d"))
    >>> [type(x).__name__ for x in s]
    ['Note', 'Note', 'Unavailable']
    >>> s.of(Unavailable)[0].why
    'd'
    """

    def __new__(cls, *items):
        flat = []
        for item in items:
            flat.extend(item if isinstance(item, Shown) else [item])
        return super().__new__(cls, flat)

    def of(self, kind) -> list:
        """The items of one type, e.g. ``shown.of(Table)``."""
        return [x for x in self if isinstance(x, kind)]

    def __repr__(self) -> str:
        return f"Shown{tuple.__repr__(self)}"

    def _ipython_display_(self) -> None:
        for item in self:
            show(item)


def show(item) -> None:
    """Display ``item`` (any object above, or anything IPython can display) in the running notebook."""
    from IPython.display import display

    display(item)


# --- private ------------------------------------------------------------------


def _md_code(text: str) -> str:
    """Escape ``text`` for HTML and render `backticks` as <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _display_html(markup: str, plain: str) -> None:
    from IPython.display import display

    display({"text/html": markup, "text/plain": plain}, raw=True)
