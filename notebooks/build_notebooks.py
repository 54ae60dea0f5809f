"""Generate the five step notebooks — the single source of truth for their content.

    python notebooks/build_notebooks.py          # write fraudkit/report/notebooks/*.ipynb and notebooks/*.ipynb
    python notebooks/build_notebooks.py --check  # exit 1 if the committed files differ from this script

``fraudkit/report/notebooks/`` (package data) is what ``fraudkit report`` runs;
``notebooks/`` holds identical copies for analysts to open in JupyterLab.
Both are written without outputs. To change a notebook for good, edit this
script and re-run it (``tests/test_notebooks.py`` fails on drift). Notebooks
stay thin: prose, tables and plots; logic lives in the package.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
TARGETS = (ROOT / "fraudkit" / "report" / "notebooks", ROOT / "notebooks")

PARAMETERS = '''# Parameters (papermill overrides them; empty paths = simulate and score the demo here)
data_dir = ""           # dataset folder (the data contract: <table>.parquet or .csv)
run_dir = ""            # run directory written by `fraudkit score` (Parquet artifacts)
train_dir = ""          # labelled training dataset the run's models and thresholds were fitted on (empty: none)
as_of = ""              # YYYY-MM-DD the monitors report on (empty: the last day in the data)
seed = 0
previous_run_dir = ""   # the previous report's run directory, for comparisons'''

SETUP = '''import pandas as pd
from IPython.display import Markdown, display
from fraudkit.report import notebook as nb, plots, views as rv
plots.set_style()
data_dir, run_dir, train_dir = nb.ensure_inputs(data_dir, run_dir, train_dir=train_dir, seed=seed)'''


def md(text):
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text, tags=()):
    cell = nbformat.v4.new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def notebook(cells, extra_params=""):
    nbk = nbformat.v4.new_notebook()
    nbk.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                    "language_info": {"name": "python"}}
    nbk.cells = [cells[0], code(PARAMETERS + extra_params, tags=["parameters"]), code(SETUP), *cells[1:]]
    for i, c in enumerate(nbk.cells):  # stable ids: the files must not change when regenerated
        c["id"] = f"cell-{i:02d}"
    return nbk


# --- 01 risk perception ------------------------------------------------------------------------

N01 = notebook([
    md("""
# 1. Risk perception

Seeing risk early, before it shows up in losses: is the data fit to use, do the monitors show anything
unusual, what does the black market charge, and what would today's attackers get past the current rules
and models (a red-team drill). Every number here is computed from the dataset tables, never from labels —
except the drill, which evaluates a simulated attack whose ground truth we know.
"""),
    md("## Data health\nOne row per contract table: whether it is present, its size and time range, and nulls "
       "in columns the contract says are never null."),
    code('''from fraudkit.perception import monitors as perception
health = perception.data_health(data_dir)
nb.show(health, caption="Tables of the dataset", max_rows=30)
nulls = perception.null_report(data_dir)
if len(nulls):
    nb.show(nulls, caption="Columns with missing values")
else:
    nb.note("No column has missing values.", kind="ok")'''),
    code('''interactions = nb.read_table(data_dir, "interactions")
accounts = nb.read_table(data_dir, "accounts")
day = nb.as_of_day(as_of, interactions["ts"] if interactions is not None else None)
display(Markdown(f"Monitors report on **{day:%Y-%m-%d}**." if day is not None else "No dated events."))'''),
    md("## Engagement spikes per note and day\nA note-day is a spike when its engagement (likes, collects, "
       "comments, shares) jumps far above that note's own daily median. Bought engagement arrives in batches; "
       "viral notes spike too, so this is a monitor for review, not a verdict."),
    code('''if interactions is None:
    nb.not_available("engagement spikes", "the dataset has no interactions table")
else:
    spikes = perception.engagement_spikes(interactions)
    daily = rv.daily_counts(interactions, "ts", by="action")
    nb.show_figure(plots.line_over_time(daily, x="day", y="events", hue="action",
        title="Interactions per day by action", xlabel="day", ylabel="interactions"))
    nb.show(spikes, caption=f"{len(spikes)} note-days flagged as engagement spikes")
    nb.write_artifact(run_dir, "perception", "engagement_spikes", spikes)'''),
    md("## Like/view ratio outliers\nScripts that call the like API directly never view the note: likes outrun "
       "views. Notes far above the usual ratio, or with more likes than views, are listed."),
    code('''if interactions is None:
    nb.not_available("like/view ratios", "the dataset has no interactions table")
else:
    ratio = perception.like_view_ratio(interactions)
    cut = ratio.loc[ratio["likes"] >= 20, "like_view_ratio"]
    nb.show_figure(plots.hist(cut, title="Like/view ratio of notes with at least 20 likes",
        xlabel="likes per view", ylabel="notes", marks={"likes = views": 1.0}))
    nb.show(ratio[ratio["outlier"]], caption=f"{int(ratio['outlier'].sum())} outlier notes")
    nb.write_artifact(run_dir, "perception", "like_view_ratio", ratio)'''),
    md("## New-account bursts\nRegistrations per day against the median of the previous two weeks; bulk "
       "registration batches (the raw material of device farms and nurtured accounts) stand out."),
    code('''if accounts is None:
    nb.not_available("new-account bursts", "the dataset has no accounts table")
else:
    bursts = perception.new_account_bursts(accounts)
    total = bursts[bursts["register_channel"] == "all"]
    nb.show_figure(plots.line_over_time(bursts, x="day", y="registrations", hue="register_channel",
        title="Registrations per day by channel", xlabel="day", ylabel="new accounts"))
    nb.show(bursts[bursts["burst"]], caption=f"{int(bursts['burst'].sum())} burst day(s) (all channels and per channel)")
    nb.write_artifact(run_dir, "perception", "new_account_bursts", bursts)'''),
    md("## Promotion traffic\nOrders and coupon claims per day; promotions are when scalpers and coupon "
       "abusers strike."),
    code('''orders = nb.read_table(data_dir, "orders")
claims = nb.read_table(data_dir, "coupon_claims")
if orders is None and claims is None:
    nb.not_available("promotion traffic", "the dataset has neither an orders nor a coupon_claims table")
else:
    traffic = perception.promotion_traffic(orders, claims, nb.read_table(data_dir, "promotions"))
    long = traffic.melt(id_vars=["day"], value_vars=["orders", "coupon_claims", "buyers"],
                        var_name="measure", value_name="count")
    nb.show_figure(plots.line_over_time(long, x="day", y="count", hue="measure",
        title="E-commerce traffic per day", xlabel="day", ylabel="count"))
    nb.show(traffic[traffic["promotion"] != ""], caption="Days inside a promotion window")'''),
    md("## Black-market intelligence\nPrices observed for accounts, phone numbers and engagement services. "
       "Rising prices mean bans are biting: the supply chain pays more for what it burns."),
    code('''intel = nb.read_table(data_dir, "intelligence")
if intel is None or not len(intel):
    nb.not_available("black-market prices", "the dataset has no intelligence table")
else:
    prices = perception.price_index(intel)
    nb.show_figure(plots.line_over_time(prices, x="date", y="change", hue="item",
        title="Black-market prices relative to the first observation", xlabel="date",
        ylabel="price change (fraction)"))
    nb.show(prices.sort_values(["item", "date"]).groupby("item").tail(1), caption="Latest price per item")'''),
    md("""
## Red-team drill
Tomorrow's attackers against today's defences. The evasive attackers (throttled scripts, scattered IPs,
spoofed or real devices, fewer actions per account) are simulated in a small world, and the same small
world without the evasion (the *normal world*, same size and seed) is simulated beside it. Both are scored
with the current rules and with the models and thresholds fitted on the training data — never on the drill
worlds — and compared typology by typology. The typologies with the most extra leakage are the next thing
to fix.
"""),
    code('''needs = [nb.require("fraudkit.simulation", "list_scenarios", what="the red-team drill"),
         nb.require("fraudkit.pipeline.score", "score_dataset", what="the red-team drill"),
         nb.require("fraudkit.evaluation.metrics", "evaluate_run", what="the red-team drill")]
if not redteam_scenario:
    nb.not_available("the red-team drill", "no attack scenario was given (redteam_scenario is empty)")
elif all(n is not None for n in needs):
    if not redteam_scenario.endswith(".yaml") and redteam_scenario not in needs[0]():
        nb.not_available("the red-team drill", f"this installation has no `{redteam_scenario}` scenario")
    else:
        drill = perception.red_team_drill(redteam_scenario, work_dir=nb.step_dir(run_dir, "perception") / "redteam",
                                          seed=seed, train=train_dir, size=redteam_size)
        display(Markdown(perception.drill_headline(drill)))
        if len(drill.comparison):
            long = drill.comparison.melt(id_vars="typology", value_vars=["leakage_rate_normal", "leakage_rate_attack"],
                                         var_name="world", value_name="leakage_rate")
            long["world"] = long["world"].map({"leakage_rate_normal": "normal world",
                                               "leakage_rate_attack": f"{redteam_scenario} world"})
            nb.show_figure(plots.bar(long, x="typology", y="leakage_rate", hue="world",
                title="Red-team drill: share of fraudulent accounts that got through", xlabel="attacker typology",
                ylabel="leakage rate", value_format=".0%", figsize=(9.0, 3.8)))
            nb.show(drill.comparison, caption="Recall and leakage per typology: normal world against the drill")
            nb.write_artifact(run_dir, "perception", "redteam_comparison", drill.comparison)
        nb.show(drill.attack, caption=f"The {redteam_scenario} world: recall by stage, look-alike false positives",
                max_rows=30)
        nb.write_artifact(run_dir, "perception", "redteam", drill.attack)'''),
], extra_params='''
redteam_scenario = "evasive"  # attack scenario of the red-team drill (empty: skip the drill)
redteam_size = "micro"        # world size of the drill (a scenario name; empty: the attack scenario's own size)''')


# --- 02 capability building --------------------------------------------------------------------

N02 = notebook([
    md("""
# 2. Capability building

What the identification stages stand on: per-entity features (computed point-in-time), accumulation
factors (counters over a key and a window), risk portraits, device fingerprints and their contradictions,
and the black- and graylists. Everything here is read from the run directory the pipeline wrote, or
computed from the dataset by the package.
"""),
    md("## Run artifacts\nEvery table the pipeline wrote for this run."),
    code('''arts = nb.list_artifacts(run_dir)
if len(arts):
    nb.show(arts, caption="Parquet artifacts of the run", max_rows=60)
else:
    nb.not_available("run artifacts", "the run directory is empty (the pipeline did not run)")'''),
    md("## Features per entity\nDistribution of each feature: median, 99th percentile, maximum and the share "
       "of entities where it is non-zero. Features with a long tail are where rules and models look."),
    code('''feats = rv.feature_tables(run_dir)
if not feats:
    nb.not_available("feature tables", "the run has no features/ folder")
for entity, df in feats.items():
    nb.show(rv.feature_summary(df), caption=f"{entity}: {len(df):,} entities, {df.shape[1] - 1} features", max_rows=15)'''),
    md("## Accumulation factors\nNamed counters over a key and a window (units per address and product in "
       "24 h, accounts per receiver phone...). They feed purchase limits and rules."),
    code('''acc_mod = nb.require("fraudkit.capability.accumulators", what="accumulation factors")
io = nb.require("fraudkit.data.dataset", "load_dataset", what="accumulation factors")
if acc_mod is not None and io is not None:
    tables = {a.table for a in acc_mod.DEFAULT_ACCUMULATORS}
    present = [t for t in sorted(tables) if nb.table_path(data_dir, t) is not None]
    if not present:
        nb.not_available("accumulation factors", f"they count over {', '.join(sorted(tables))}, which the dataset lacks")
    else:
        ds = io(data_dir)
        values = acc_mod.compute_by_table([a for a in acc_mod.DEFAULT_ACCUMULATORS if a.table in present], ds)
        for table, frame in values.items():
            nb.show(rv.feature_summary(frame.drop(columns=["ts"], errors="ignore")),
                    caption=f"Accumulation factors on {table} ({len(frame):,} rows)")'''),
    md("## Device fingerprints\nA device whose screen or OS contradicts what its model usually reports, "
       "emulators, rooted phones, and fingerprints shared by many device ids (cloned login states on a "
       "device farm)."),
    code('''dev = feats.get("device")
if dev is None:
    nb.not_available("device fingerprints", "the run has no device features (the dataset has no devices table)")
else:
    cols = [c for c in ("env_contradiction", "fingerprint_devices", "is_emulator", "is_rooted") if c in dev.columns]
    if "env_contradiction" in dev.columns:
        nb.show_figure(plots.hist(dev["env_contradiction"], title="Device environment contradiction",
            xlabel="contradiction (1 - share of the model's devices with this screen/OS)", ylabel="devices", log=True))
    if "fingerprint_devices" in dev.columns:
        nb.show(dev.sort_values("fingerprint_devices", ascending=False, kind="stable")[[dev.columns[0], *cols]],
                caption="Devices whose fingerprint is shared by the most device ids", max_rows=10)'''),
    md("## Risk portraits\nThe behaviour stage's per-account score is the account's risk portrait; the "
       "decision layer reads it. Its distribution and the most frequent reasons:"),
    code('''scores = nb.read_artifact(run_dir, "scores")
if scores is None or not len(scores):
    nb.not_available("risk portraits", "the run has no scores.parquet")
else:
    beh = scores[(scores["stage"] == "behaviour") & (scores["entity_type"] == "account")]
    if not len(beh):
        nb.not_available("risk portraits", "the behaviour stage produced no account scores")
    else:
        nb.show_figure(plots.hist(beh["score"], title="Behaviour-stage account scores (risk portrait)",
            xlabel="score (higher is riskier)", ylabel="accounts", log=True))
        nb.show(rv.reason_counts(beh), caption="Most frequent reasons among flagged accounts")'''),
    md("## Lists\nBlack- and graylists by name, entity type and scope (global, per promotion, per scene)."),
    code('''entries = nb.read_table(data_dir, "list_entries")
if entries is None or not len(entries):
    nb.not_available("lists", "the dataset has no list_entries table")
else:
    summary = (entries.groupby(["list_type", "list_name", "entity_type", "scope"]).size()
               .rename("entries").reset_index().sort_values("entries", ascending=False))
    nb.show(summary, caption="List entries by list, entity type and scope")'''),
])


# --- 03 risk identification --------------------------------------------------------------------

N03 = notebook([
    md("""
# 3. Risk identification

Three stages, each the answer to attackers adapting to the previous one: **behaviour** (single-entity
features, rules and a model), **group** (device clustering, frequent co-actions) and **graph** (shared
resources, communities, label propagation). The arms-race table shows which typology each stage catches;
honest look-alikes (shared family devices, campus Wi-Fi, flash-sale crowds, viral fans) must stay unpunished.
"""),
    code('''accounts_run = nb.read_artifact(run_dir, "accounts")
scores = nb.read_artifact(run_dir, "scores")
if accounts_run is None:
    nb.not_available("identification results", "the run has no accounts.parquet (the pipeline did not run)")
kind, text = rv.training_note(run_dir)
nb.note(text, kind=kind)
nb.show(rv.operating_point(run_dir), caption="Operating point: each stage's threshold and where it came from")
notes = rv.run_notes(run_dir)
if len(notes):
    nb.show(notes, caption="What the pipeline skipped on this dataset, and why", max_rows=40)'''),
    md("## What each stage flags"),
    code('''if scores is not None and len(scores):
    per = (scores.groupby(["stage", "method", "entity_type"])
           .agg(entities=("entity_id", "size"), flagged=("flagged", "sum")).reset_index())
    nb.show(per, caption="Entities scored and flagged per stage and method")
if accounts_run is not None:
    overlap = rv.stage_overlap(accounts_run)
    if len(overlap):
        nb.show(overlap, caption="Accounts flagged by each combination of stages")'''),
    md("## The arms-race table\nRecall per attacker typology by stage and combined; false-positive rate per "
       "honest look-alike group. Entities a model trained on are left out of the figures."),
    code('''evaluate_run = nb.require("fraudkit.evaluation.metrics", "evaluate_run", what="the arms-race table")
if evaluate_run is not None and accounts_run is not None:
    if nb.table_path(data_dir, "labels") is None:
        nb.not_available("the arms-race table", "the dataset has no labels table")
    else:
        table = evaluate_run(run_dir, data=data_dir)
        nb.show(table, caption="Recall (fraud) and false-positive rate (look-alikes) by stage", max_rows=30)
        recall = rv.metric_grid(table, "recall_")
        if len(recall):
            nb.show_figure(plots.heatmap(recall, title="Recall per typology and stage",
                xlabel="identification stage", ylabel="attacker typology"))
        fpr = rv.metric_grid(table, "fpr_")
        if len(fpr):
            nb.show_figure(plots.heatmap(fpr, title="False-positive rate of honest look-alikes",
                xlabel="identification stage", ylabel="honest group", vmax=max(0.05, float(fpr.max().max()))))
        nb.write_artifact(run_dir, "identification", "arms_race", table)'''),
    md("## Communities\nThe graph stage's communities, riskiest first, and a picture of the top one "
       "(an interactive graph: drag to explore)."),
    code('''found = rv.find_communities(run_dir)
if found is None:
    nb.not_available("communities", "the run has no community artifact (the graph stage did not run or found none)")
else:
    name, communities, score_col = found
    nb.show(communities.sort_values(score_col, ascending=False, kind="stable"),
            caption=f"Communities ({name}), by {score_col}", max_rows=10)
    render = nb.require("fraudkit.report.viz", "render_community", what="community pictures")
    if render is not None:
        nb.show_graph(rv.community_picture(render, run_dir, data_dir, communities, score_col, seed=seed),
                      title="Top-risk community")'''),
])


# --- 04 risk mitigation --------------------------------------------------------------------------

N04 = notebook([
    md("""
# 4. Risk mitigation

What is done to whom. Governance aims at three things: the *impact* (clean the fake counts), the *supply
chain* (ban the accounts, burn the devices and phones) and the *motive* (demote the notes that bought
engagement and restrict their authors' commercial rights). In e-commerce: personalised purchase limits,
lists scoped to a promotion, and delayed interception so attackers cannot learn the rule.
"""),
    md("## Layered decisions\nEach event's decision (pass, verify, block) and the layer that produced it: "
       "blacklist → rules → portrait → network → graylist."),
    code('''decisions = nb.read_artifact(run_dir, "decisions")
if decisions is None or not len(decisions):
    nb.not_available("layered decisions", "the run has no decisions.parquet")
else:
    by = rv.decision_breakdown(decisions)
    nb.show(by, caption="Decisions by layer")
    nb.show_figure(plots.bar(by, x="layer", y="events", hue="decision", title="Decisions by layer",
        xlabel="layer that decided", ylabel="events"))
    if "delayed" in decisions.columns and decisions["delayed"].any():
        nb.note(f"{int(decisions['delayed'].sum()):,} events were let through now and intercepted later "
                "at a key step (delayed interception).")
    if "reasons" in decisions.columns:
        nb.show(rv.reason_counts(decisions[decisions["decision"] != "pass"], column="reasons"),
                caption="Most frequent reasons behind verify and block")'''),
    md("""
## Governance actions
The same identification result, governed five ways. Every action below is computed from this run's flags
and decisions (`fraudkit.mitigation.actions`); the labels are read only at the end, to count the honest collateral.
"""),
    code('''mitigation = nb.require("fraudkit.mitigation.actions", what="governance actions")
gov = None
if mitigation is not None and nb.read_artifact(run_dir, "accounts", columns=["account_id"]) is not None:
    from fraudkit.report import mitigation_views as mv
    gov = mv.governance_actions(run_dir, data_dir)
    nb.show(mv.governance_changes(gov), caption="What each action does and what it changes", max_rows=20)
    for action, why in gov.skipped.items():
        nb.not_available(action, why)
elif mitigation is not None:
    nb.not_available("governance actions", "the run has no accounts.parquet")'''),
    md("""
### Impact: clean the fake counts
Fake likes, collects, comments and shares from flagged accounts are removed from the counts. On its own this
only costs the buyer what they paid: trying again has no marginal cost.
"""),
    code('''r = gov.results.get("clean_engagement") if gov else None
if r is not None:
    nb.show(mv.clean_by_action(r), caption="Fake engagement removed, by action: raw, fake and clean counts")'''),
    md("""
### Supply chain: ban the accounts, burn the resources
Banning the accounts that deliver fake engagement shrinks the supply: the devices, IPs, phone numbers and
addresses used *only* by banned accounts are burned and must be bought again, so the price of accounts and of
the service rises. A resource shared with honest users (a campus IP) is touched, not burned.
"""),
    code('''r = gov.results.get("ban_accounts") if gov else None
if r is not None:
    nb.show(mv.ban_resources(r), caption=f"Resources of the {r.summary['banned']:,} banned accounts: touched and burned")'''),
    md("""
### Motive: demote the notes, restrict the buyers
Notes whose engagement is mostly fake are demoted below what their clean engagement alone would earn, and
their authors (the buyers of fake traffic) lose commercial rights: cheating stops paying.
"""),
    code('''for name, sort, caption in (("demote_notes", "fake_count", "Demoted notes: fake share and distribution weight"),
                            ("restrict_commerce", "fake_bought", "Authors whose commercial rights are restricted")):
    r = gov.results.get(name) if gov else None
    if r is not None:
        t = r.table[r.table["demoted"]] if name == "demote_notes" else r.table[r.table["restricted"]]
        nb.show(t.sort_values(sort, ascending=False, kind="stable"), caption=f"{caption} ({len(t):,})", max_rows=8)'''),
    md("""
### Scalpers: personalised purchase limits
Limits are declared as data: units per address and per device per day on limited-stock items, and units per
receiver phone per promotion. The buyer's risk tier sets the limit: not flagged → low (generous), flagged by
one stage → medium, corroborated by two or more → high (strict). Honest buyers keep the generous limit.
"""),
    code('''r = gov.results.get("purchase_limit") if gov else None
if r is not None:
    nb.show(pd.DataFrame([lim.to_dict() for lim in mitigation.DEFAULT_PURCHASE_LIMITS]), caption="The limits")
    nb.show(mv.limit_breakdown(r), caption="Orders under each limit and refusals, by risk tier")'''),
    md("""
### Lists scoped to a promotion
Addresses and devices behind intercepted orders of one promotion are blacklisted *for that promotion only*
(with an expiry and an audit trail); other promotions and everyday shopping never see them. A key shared with
honest buyers is not listed.
"""),
    code('''r = gov.results.get("lists") if gov else None
if r is not None:
    nb.show(r.table.drop(columns=["entry_id"], errors="ignore"),
            caption=f"Keys listed for promotion {gov.promotion_id}", max_rows=10)'''),
    md("""
### Delayed interception: the trade-off
Refusing at the moment of the trigger tells attackers which action tripped the rule. Flagging now and acting
later — at the account's next key step, or when the promotion closes — hides the trigger, at a cost: the
events let through meanwhile.
"""),
    code('''delayed = [gov.results[k].summary_frame().assign(action=k) for k in ("delayed_key_step", "delayed_window_end")
           if gov and k in gov.results]
if delayed:
    nb.show(pd.concat(delayed, ignore_index=True),
            caption="Immediate vs delayed interception: lag, events leaked while waiting, triggers hidden")'''),
    md("""
### Honest collateral
Per action: how many entities it hits, how many of them are fraud, and which honest look-alike groups pay for
it (shared family devices, campus Wi-Fi, flash-sale crowds, viral fans).
"""),
    code('''if gov is not None and gov.summary is None:
    nb.not_available("honest collateral", "the dataset has no labels table")
elif gov is not None:
    nb.show_figure(plots.bar(mv.collateral_share(gov.summary), x="action", y="honest_share",
        title="Honest collateral: share of what each action hits that is not fraud", xlabel="governance action (what it counts)",
        ylabel="share not fraud", value_format=".1%", figsize=(9.0, 4.2)))
    nb.show(gov.summary.drop(columns=["action"]), caption="Entities affected per action, by typology and look-alike group")
    nb.write_artifact(run_dir, "mitigation", "summary", gov.summary)'''),
])


# --- 05 effect evaluation ----------------------------------------------------------------------

N05 = notebook([
    md("""
# 5. Effect evaluation

Did it work? Leakage (fraud that got through) in volume and rate, precision and recall per typology,
the interception rate per day against early-warning thresholds, and the cost imposed on attackers:
accounts, devices and phone numbers burned. Labels are read here, by `fraudkit.evaluation.metrics`, and nowhere else.
"""),
    code('''evaluation = nb.require("fraudkit.evaluation.metrics", what="effect evaluation")
has_labels = nb.table_path(data_dir, "labels") is not None
accounts_run = nb.read_artifact(run_dir, "accounts")
kind, text = rv.training_note(run_dir)
nb.note(text, kind=kind)
if not has_labels:
    nb.not_available("precision, recall and leakage", "the dataset has no labels table")'''),
    md("## Precision and recall per typology"),
    code('''if evaluation is not None and has_labels and accounts_run is not None:
    table = evaluation.evaluate_run(run_dir, data=data_dir)
    pr = rv.precision_recall_view(table)
    nb.show(pr, caption="Recall per typology (combined decision); precision and recall over all fraud")
    nb.write_artifact(run_dir, "evaluation", "evaluation_table", table)'''),
    md("## Leakage and interception per day\nLeakage is fraudulent events the layered decision passed. The "
       "early-warning line marks days whose interception rate drops well below the period's median — the "
       "sign that attackers found a way through."),
    code('''decisions = nb.read_artifact(run_dir, "decisions")
if decisions is None or not len(decisions):
    nb.not_available("leakage and interception", "the run has no decisions.parquet")
elif evaluation is not None and has_labels:
    events = rv.decision_events(decisions, data_dir)
    leak = evaluation.leakage(events["decision"], events["is_fraud"])
    nb.show(pd.DataFrame([leak]), caption="Leakage over the whole period (events)")
    daily = evaluation.interception_rate_by_day(events["decision"], events["ts"], events["is_fraud"])
    warn = rv.early_warning(daily)
    nb.show_figure(plots.line_over_time(daily.melt(id_vars="day", value_vars=["interception_rate", "leakage_rate"],
        var_name="measure", value_name="rate"), x="day", y="rate", hue="measure",
        title="Interception and leakage rate per day", xlabel="day", ylabel="rate", thresholds=warn.thresholds))
    if warn.days:
        nb.note(f"Early warning on {len(warn.days)} day(s): " + ", ".join(warn.days), kind="warn")
    else:
        nb.note("No day crossed the early-warning threshold.", kind="ok")
    nb.write_artifact(run_dir, "evaluation", "interception_by_day", daily)'''),
    md("## Cost imposed on attackers\nThe resources behind flagged accounts — accounts, devices, IPs and phone "
       "numbers — are burned: the supply chain must buy or nurture new ones, and black-market prices rise."),
    code('''if accounts_run is None or "flagged_combined" not in accounts_run.columns:
    nb.not_available("cost to attackers", "the run has no combined flags")
else:
    burned = rv.resources_burned(accounts_run, data_dir)
    nb.show(burned, caption="Resources tied to flagged accounts")'''),
    md("""
## The closed loop
Labelling → interception → product identification → data sinking → re-scan → label update, window by window
(`fraudkit.evaluation.loop`). Each window scores everything seen up to its end; accounts flagged by two independent
stages become seeds; products bought mostly by flagged accounts are watched; addresses, devices and receiver
phones used mostly by flagged accounts are sunk and blacklisted for the next promotion; the graph stage
re-scans from the seeds; the loop's labels persist. *Without the loop* is the same windows scored on their
own. The loop's runs use the rules and the unsupervised stages (`run_closed_loop` takes no training data).
"""),
    code('''run_loop = nb.require("fraudkit.evaluation.loop", "run_closed_loop", what="the closed loop")
loop = None
if not loop_windows:
    nb.not_available("the closed loop", "loop_windows is 0")
elif run_loop is not None:
    loop = run_loop(data_dir, nb.step_dir(run_dir, "evaluation") / "loop", n_windows=int(loop_windows), seed=seed)
    recall = loop.recall_table()
    if "recall_loop" in recall.columns:
        fig = plots.line_over_time(rv.loop_recall_long(recall), x="iteration", y="value", hue="measure",
            title="Closed loop: recall and precision by iteration", xlabel="loop iteration (window)",
            ylabel="share of accounts")
        fig.axes[0].set_xticks(sorted(recall["iteration"].unique()))
        nb.show_figure(fig)
        nb.write_artifact(run_dir, "evaluation", "loop_recall", recall)
    else:
        nb.not_available("closed-loop recall", "the dataset has no labels table")
    nb.show(rv.loop_iterations(loop.summary), caption=f"The loop, window by window ({int(loop_windows)} windows)")'''),
    md("### What the loop keeps: watched products and sunk keys"),
    code('''if loop is not None:
    nb.show(loop.watched_products, caption=f"{len(loop.watched_products):,} watched products", max_rows=10)
    for kind, t in rv.sunk_view(loop.sunk).items():
        nb.show(t, caption=f"{len(t):,} sunk {kind} (used mostly by flagged accounts)", max_rows=8)'''),
    md("""
### Early warning on the interception rate
Per day, the share of orders the loop intercepted against a band around the previous days' median. A day
below the band — scalpers finding a way round the rules, or a rule silently broken — raises a warning.
"""),
    code('''if loop is not None and len(loop.early_warning):
    ew = loop.early_warning
    nb.show_figure(plots.line_over_time(rv.early_warning_long(ew), x="day", y="rate", hue="measure",
        title="Orders intercepted per day and the early-warning band", xlabel="day", ylabel="interception rate"))
    warned = ew[ew["warning"]]
    if len(warned):
        nb.note(f"Early warning on {len(warned)} day(s): " + "; ".join(warned["message"]), kind="warn")
    else:
        nb.note("No day fell below the early-warning band.", kind="ok")
    nb.show(ew, caption="Interception rate per day with the band", max_rows=31)
elif loop is not None:
    nb.not_available("the early warning", "the loop saw no orders")'''),
    md("## Compared with the previous report's run"),
    code('''if not previous_run_dir:
    nb.not_available("comparison with the previous run", "no previous report exists")
else:
    nb.show(rv.compare_runs(run_dir, previous_run_dir), caption="Key numbers, this run against the previous one")'''),
], extra_params='''
loop_windows = 4  # windows of the closed loop (0: skip it; each window re-scores the data up to its end)''')

NOTEBOOKS = {
    "01_risk_perception": N01,
    "02_capability_building": N02,
    "03_risk_identification": N03,
    "04_risk_mitigation": N04,
    "05_effect_evaluation": N05,
}


def render(nbk) -> str:
    return nbformat.writes(nbk, version=4) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    check = "--check" in argv
    stale = []
    for target in TARGETS:
        target.mkdir(parents=True, exist_ok=True)
        for name, nbk in NOTEBOOKS.items():
            path, text = target / f"{name}.ipynb", render(nbk)
            if path.exists() and path.read_text(encoding="utf-8") == text:
                continue
            stale.append(path)
            if not check:
                path.write_text(text, encoding="utf-8")
    if check and stale:
        print("out of date (run python notebooks/build_notebooks.py):\n  " + "\n  ".join(map(str, stale)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
