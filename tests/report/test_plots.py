"""Every chart has a title and labelled axes; PNGs are reproducible."""

import pandas as pd
import pytest

from fraudkit.report import plots


def test_helpers_refuse_unlabelled_charts():
    with pytest.raises(ValueError):
        plots.new_figure(title="", xlabel="x", ylabel="y")
    fig, ax = plots.new_figure(title="t", xlabel="x", ylabel="y")
    ax.set_xlabel("")
    with pytest.raises(ValueError, match="xlabel"):
        plots.check_labelled(fig)


def test_charts_are_labelled_and_byte_reproducible():
    df = pd.DataFrame({"day": pd.date_range("2024-01-01", periods=4).repeat(2), "kind": ["a", "b"] * 4,
                       "n": [1, 2, 3, 4, 5, 6, 7, 8]})
    f1 = plots.line_over_time(df, x="day", y="n", hue="kind", title="T", xlabel="day", ylabel="n",
                              thresholds={"warn": 3})
    assert len(f1.axes[0].lines) == 3
    grid = pd.DataFrame({"behaviour": [0.5, 0.1], "graph": [0.9, 0.8]}, index=["device_farm", "crowd_scalper"])
    f2 = plots.heatmap(grid, title="Recall", xlabel="stage", ylabel="typology")
    assert plots.to_png_bytes(f2) == plots.to_png_bytes(
        plots.heatmap(grid, title="Recall", xlabel="stage", ylabel="typology"))
    f3 = plots.bar(pd.DataFrame({"t": ["a", "b"], "v": [1.0, 2.0]}), x="t", y="v", title="B", xlabel="t", ylabel="v")
    assert len(f3.axes[0].patches) == 2
    assert plots.to_data_uri(f3).startswith("data:image/png;base64,")
