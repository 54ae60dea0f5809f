"""What notebook 01 (risk perception) shows: one function per section, from the dataset tables.

Each function takes the notebook's :class:`fraudkit.report.notebook.Context` and
returns what the section shows (:mod:`fraudkit.report.display`): the monitor's
chart and table from :mod:`fraudkit.perception.monitors`, or why the section is
not available (a missing table). Monitors write their tables into the run
directory (``RUN/report/perception/``) for scheduled alerting. Labels are never
read here, except by the red-team drill, which evaluates simulated attacks.
"""

from __future__ import annotations

from fraudkit.perception import monitors
from fraudkit.report import plots
from fraudkit.report.display import Chart, Note, Shown, Table, Text, Unavailable
from fraudkit.report.notebook import Context, as_of_day, step_dir, write_artifact
from fraudkit.report.views import daily_counts
from fraudkit.simulation import list_scenarios

__all__ = [
    "data_health",
    "missing_values",
    "report_day",
    "engagement_spikes",
    "like_view_ratios",
    "new_account_bursts",
    "promotion_traffic",
    "black_market_prices",
    "start_red_team_drill",
    "red_team_drill",
]


def data_health(ctx: Context) -> Table:
    """One row per contract table: present, size, time range, contract nulls (each table read once per notebook).

    See :func:`fraudkit.perception.monitors.data_health`.
    """
    return Table(monitors.data_health(ctx.data_dir, read=ctx.table), caption="Tables of the dataset", max_rows=30)


def missing_values(ctx: Context) -> Table | Note:
    """Columns with missing values (:func:`fraudkit.perception.monitors.null_report`), or a note that there are none."""
    nulls = monitors.null_report(ctx.data_dir, read=ctx.table)
    if len(nulls):
        return Table(nulls, caption="Columns with missing values")
    return Note("No column has missing values.", kind="ok")


def report_day(ctx: Context) -> Text:
    """The day the monitors report on: ``as_of``, else the last day of the interactions."""
    interactions = ctx.table("interactions")
    day = as_of_day(ctx.as_of, interactions["ts"] if interactions is not None else None)
    return Text(f"Monitors report on **{day:%Y-%m-%d}**." if day is not None else "No dated events.")


def engagement_spikes(ctx: Context) -> Shown | Unavailable:
    """Interactions per day by action, and the note-days whose engagement jumps above the note's own median."""
    interactions = ctx.table("interactions")
    if interactions is None:
        return Unavailable("engagement spikes", "the dataset has no interactions table")
    spikes = monitors.engagement_spikes(interactions)
    daily = daily_counts(interactions, "ts", by="action")
    write_artifact(ctx.run_dir, "perception", "engagement_spikes", spikes)
    return Shown(Chart(plots.line_over_time(daily, x="day", y="events", hue="action",
                                            title="Interactions per day by action", xlabel="day",
                                            ylabel="interactions")),
                 Table(spikes, caption=f"{len(spikes)} note-days flagged as engagement spikes"))


def like_view_ratios(ctx: Context) -> Shown | Unavailable:
    """The like/view ratio of notes with at least 20 likes, and the outlier notes."""
    interactions = ctx.table("interactions")
    if interactions is None:
        return Unavailable("like/view ratios", "the dataset has no interactions table")
    ratio = monitors.like_view_ratio(interactions)
    cut = ratio.loc[ratio["likes"] >= 20, "like_view_ratio"]
    write_artifact(ctx.run_dir, "perception", "like_view_ratio", ratio)
    return Shown(Chart(plots.hist(cut, title="Like/view ratio of notes with at least 20 likes",
                                  xlabel="likes per view", ylabel="notes", marks={"likes = views": 1.0})),
                 Table(ratio[ratio["outlier"]], caption=f"{int(ratio['outlier'].sum())} outlier notes"))


def new_account_bursts(ctx: Context) -> Shown | Unavailable:
    """Registrations per day by channel, and the burst days (all channels and per channel)."""
    accounts = ctx.table("accounts")
    if accounts is None:
        return Unavailable("new-account bursts", "the dataset has no accounts table")
    bursts = monitors.new_account_bursts(accounts)
    write_artifact(ctx.run_dir, "perception", "new_account_bursts", bursts)
    return Shown(Chart(plots.line_over_time(bursts, x="day", y="registrations", hue="register_channel",
                                            title="Registrations per day by channel", xlabel="day",
                                            ylabel="new accounts")),
                 Table(bursts[bursts["burst"]],
                       caption=f"{int(bursts['burst'].sum())} burst day(s) (all channels and per channel)"))


def promotion_traffic(ctx: Context) -> Shown | Unavailable:
    """Orders, coupon claims and buyers per day, and the days inside a promotion window."""
    orders, claims = ctx.table("orders"), ctx.table("coupon_claims")
    if orders is None and claims is None:
        return Unavailable("promotion traffic", "the dataset has neither an orders nor a coupon_claims table")
    traffic = monitors.promotion_traffic(orders, claims, ctx.table("promotions"))
    long = traffic.melt(id_vars=["day"], value_vars=["orders", "coupon_claims", "buyers"],
                        var_name="measure", value_name="count")
    return Shown(Chart(plots.line_over_time(long, x="day", y="count", hue="measure",
                                            title="E-commerce traffic per day", xlabel="day", ylabel="count")),
                 Table(traffic[traffic["promotion"] != ""], caption="Days inside a promotion window"))


def black_market_prices(ctx: Context) -> Shown | Unavailable:
    """Black-market prices relative to their first observation, and the latest price per item."""
    intel = ctx.table("intelligence")
    if intel is None or not len(intel):
        return Unavailable("black-market prices", "the dataset has no intelligence table")
    prices = monitors.price_index(intel)
    return Shown(Chart(plots.line_over_time(prices, x="date", y="change", hue="item",
                                            title="Black-market prices relative to the first observation",
                                            xlabel="date", ylabel="price change (fraction)",
                                            recent_days=None)),
                 Table(prices.sort_values(["item", "date"]).groupby("item").tail(1), caption="Latest price per item"))


def start_red_team_drill(ctx: Context, *, scenario: str, size: str) -> None:
    """Start the drill's normal world in a second process, to run while the monitors do; shows nothing.

    :func:`red_team_drill` (same ``scenario`` and ``size``) collects it
    (:func:`~fraudkit.perception.monitors.start_normal_world`). Nothing is started when there is no drill
    to run (no or an unknown scenario, no size) or the world is already scored.
    """
    work = _drill_dir(ctx)
    if _drill_unavailable(scenario) is None and size and not (work / "normal" / "run" / "accounts.parquet").exists():
        ctx.memo(_started(size), lambda: monitors.start_normal_world(
            work_dir=work, seed=ctx.seed, train=ctx.train_dir, size=size, reuse=ctx.run_dir))


def red_team_drill(ctx: Context, *, scenario: str, size: str) -> Shown | Unavailable:
    """Tomorrow's attackers against today's defences (:func:`~fraudkit.perception.monitors.red_team_drill`).

    ``scenario`` is the attack scenario (a name or a ``.yaml`` file; empty: no
    drill), ``size`` the world size it is simulated at. The worlds live in
    ``RUN/report/perception/redteam`` and are scored with the models and
    thresholds fitted on ``ctx.train_dir``. Shows the headline, leakage per
    typology in the normal and the attack world, and the attack world's
    evaluation table; writes both tables into the run directory.
    """
    unavailable = _drill_unavailable(scenario)
    if unavailable is not None:
        return unavailable
    drill = monitors.red_team_drill(scenario, work_dir=_drill_dir(ctx), seed=ctx.seed, train=ctx.train_dir,
                                    size=size, reuse=ctx.run_dir,  # the main run's training pass, when it matches
                                    normal=ctx.cache.get(_started(size)))  # started by start_red_team_drill
    shown = [Text(monitors.drill_headline(drill))]
    if len(drill.comparison):
        long = drill.comparison.melt(id_vars="typology", value_vars=["leakage_rate_normal", "leakage_rate_attack"],
                                     var_name="world", value_name="leakage_rate")
        long["world"] = long["world"].map({"leakage_rate_normal": "normal world",
                                           "leakage_rate_attack": f"{scenario} world"})
        shown += [Chart(plots.bar(long, x="typology", y="leakage_rate", hue="world",
                                  title="Red-team drill: share of fraudulent accounts that got through",
                                  xlabel="attacker typology", ylabel="leakage rate", value_format=".0%",
                                  figsize=(9.0, 3.8))),
                  Table(drill.comparison, caption="Recall and leakage per typology: normal world against the drill")]
        write_artifact(ctx.run_dir, "perception", "redteam_comparison", drill.comparison)
    shown.append(Table(drill.attack, caption=f"The {scenario} world: recall by stage, look-alike false positives",
                       max_rows=30))
    write_artifact(ctx.run_dir, "perception", "redteam", drill.attack)
    return Shown(*shown)


def _drill_unavailable(scenario: str) -> Unavailable | None:
    """Why the drill of ``scenario`` cannot run, or None."""
    if not scenario:
        return Unavailable("the red-team drill", "no attack scenario was given (redteam_scenario is empty)")
    if not scenario.endswith(".yaml") and scenario not in list_scenarios():
        return Unavailable("the red-team drill",
                           f"there is no scenario called `{scenario}` (`fraudkit scenarios` lists them)")
    return None


def _drill_dir(ctx: Context):
    return step_dir(ctx.run_dir, "perception") / "redteam"


def _started(size: str) -> tuple:
    """The context's key of the normal world :func:`start_red_team_drill` started."""
    return ("red_team_drill", "normal", str(size))
