"""The ``fraudkit`` command. Wiring only: each command calls one package function."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import click

from fraudkit import simulation
from fraudkit.data import adapters, connection, dataset
from fraudkit.data.atomic import check_output
from fraudkit.errors import FraudkitError
from fraudkit.evaluation import backtest, graphbench, metrics, review as reviewing
from fraudkit.identification.graph.propagation import SeedPool
from fraudkit.pipeline import frames
from fraudkit.pipeline import score as scoring
from fraudkit.pipeline.own_labels import OwnLabels
from fraudkit.pipeline.progress import Progress
from fraudkit.report import build

__all__ = ["main"]


class _Group(click.Group):
    """Turns every failure a user can cause into a message and an exit code, never a raw traceback.

    Exit 2: fraudkit refused the input or the request (the message names the file, column or rule and the
    fix); exit 1: the system refused (disk full, permission denied) or an unexpected error; 130: interrupted.
    ``--debug`` (or ``FRAUDKIT_DEBUG=1``) shows the traceback instead.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except BaseException as e:  # noqa: BLE001 - the one place every failure becomes a message
            if _debug(ctx):
                raise
            message, code = _describe(e)
            click.echo(f"error: {message}", err=True)
            sys.exit(code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fraudkit")
@click.option("--debug", is_flag=True, help="Show the Python traceback of a failure instead of a message.")
def main(debug):
    """fraudkit: find fake traffic, device farms, scalpers and coupon abusers.

    The five-step process (perception, capability, identification, mitigation,
    evaluation) runs as notebooks; these commands are its building blocks.
    """


@main.command()
@click.option("--scenario", default="demo-small", show_default=True,
              help="A named scenario (see `fraudkit scenarios`) or a path to a scenario YAML file.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: written when the run succeeds; an earlier dataset there is replaced, a folder "
                   "holding other files is refused (see --force).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed (the same default as `fraudkit score` and `fraudkit report`).")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
@click.option("--force", is_flag=True, help="Replace --out even if it holds files fraudkit did not write.")
def simulate(scenario, out, seed, fmt, quiet, force):
    """Simulate a platform with labelled attackers and honest look-alikes."""
    summary = simulation.simulate(scenario, out, seed=seed, fmt=fmt, progress=Progress("simulate", enabled=not quiet),
                                  force=force)
    click.echo(summary.describe())


@main.command()
def scenarios():
    """List the named simulation scenarios."""
    for name, description in simulation.list_scenarios().items():
        click.echo(f"{name:16s} {description}")


@main.command()
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--quarantine", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Instead of failing, write rejected rows here (one file per table) and report counts.")
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
              help="Where the checks run: embedded DuckDB, or Spark (pip install 'fraudkit[spark]', Java 17); "
                   "the same checks, the same findings.")
@click.option("--spark-master", default=None,
              help="With --engine spark: the master URL (spark://host:7077, yarn, k8s://...); default local[2].")
def validate(data, quarantine, engine, spark_master):
    """Check a dataset folder against the data contract."""
    if spark_master is not None and engine != "spark":
        raise FraudkitError("--spark-master goes with --engine spark")
    if quarantine is not None:
        check_output(quarantine, kind="quarantine", inputs=[data])
    report = dataset.validate_dataset(data, quarantine=quarantine, engine=engine, master=spark_master)
    click.echo(report.describe())
    if not report.ok:
        sys.exit(1)


@main.command()
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory for scores and decisions (Parquet): written when the run succeeds; an earlier "
                   "run there is replaced, a folder holding other files is refused (see --force); never the data.")
@click.option("--stages", default="behaviour,group,graph", show_default=True,
              help="Comma-separated identification stages to run.")
@click.option("--rules", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Rule-set YAML (default: the built-in rule set, fraudkit/identification/rulesets/default.yaml).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--train", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Labelled dataset that fixes each stage's threshold (default: each stage's unsupervised default).")
@click.option("--precision", "target_precision", type=float, default=0.9, show_default=True,
              help="With --train: precision each stage method's threshold must reach on the training labels.")
@click.option("--seed-pool", "seed_pool", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None,
              help="Risk seed pool Parquet (seed_pool.parquet of an earlier run or loop) for the graph stage.")
@click.option("--labels", "labels", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Your own labels (label store CSV: entity_type, entity_id, label, source, time) instead of "
                   "--train: models and thresholds are fitted on the data before --train-until.")
@click.option("--train-until", default=None,
              help="With --labels: train on the data before this date; later verdicts check the run "
                   "(default: the data's end, nothing held out).")
@click.option("--label-delay", default="0D", show_default=True,
              help="With --labels: how long a verdict takes to arrive (verdicts known by --train-until plus "
                   "this are trained on), e.g. 7D.")
@click.option("--label-coverage", type=float, default=None,
              help="With --labels: the share of the fraud your labels cover, when known (default: estimated).")
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
              help="Where the table transforms run: embedded DuckDB, or Spark (pip install 'fraudkit[spark]', "
                   "Java 17). On Spark: loading and validation, entity resolution, the behaviour stage's "
                   "feature SQL (account, device, IP, phone, address, order, sequence, accumulator blocks), the "
                   "group stage's SQL, the graph stage's shared-entity edge SQL and its communities (per "
                   "connected component); rules, decisions, models, projections, R(A,B) and propagation still run "
                   "locally on a DuckDB copy of the resolved tables (docs/data-layer.md). The same results as "
                   "DuckDB.")
@click.option("--spark-master", default=None,
              help="With --engine spark: the master URL (spark://host:7077, yarn, k8s://...); default local[2].")
@click.option("--spark-conf", "spark_conf", multiple=True, metavar="KEY=VALUE",
              help="With --engine spark: a setting of the session started for the run, repeatable "
                   "(e.g. spark.driver.memory=6g: in local mode the driver's JVM does all the work).")
@click.option("--train-engine", type=click.Choice(["auto", "duckdb", "spark"]), default="auto", show_default=True,
              help="With --engine spark: where the --train data's transforms run; auto keeps training data of up to "
                   "1 GiB of files on DuckDB, where the same SQL reads it in seconds.")
@click.option("--side-by-side/--one-after-the-other", "side_by_side", default=None,
              help="Run the group and graph stages side by side in two threads (DuckDB), or one after the other: "
                   "the same results; side by side is sooner on two cores or more, with both stages' memory at "
                   "once (medium world: 87 s against 92 s at the same peak; large: 58 s sooner, 12.5 GB peak "
                   f"against 7.8 GB). Default: side by side for data of up to {scoring.SIDE_BY_SIDE_EVENTS:,} events "
                   f"(interactions, logins, orders, coupon claims), of them at most {scoring.SIDE_BY_SIDE_ORDERS:,} "
                   "orders.")
@click.option("--force", is_flag=True, help="Replace --out even if it holds files fraudkit did not write.")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr (stage, step, rows, seconds).")
def score(data, out, stages, rules, seed, train, target_precision, seed_pool, labels, train_until, label_delay,
          label_coverage, engine, spark_master, spark_conf, train_engine, side_by_side, force, quiet):
    """Score a dataset: features, rules, models, group and graph stages, decisions.

    Progress goes to stderr, one line per step as it starts and ends (a bar on a terminal; plain lines when
    stderr is not a terminal or CI is set); the result goes to stdout.
    """
    if spark_master is not None and engine != "spark":
        raise FraudkitError("--spark-master goes with --engine spark")
    if spark_conf and engine != "spark":
        raise FraudkitError("--spark-conf goes with --engine spark")
    if train_engine == "spark" and engine != "spark":
        raise FraudkitError("--train-engine spark goes with --engine spark")
    bad = [c for c in spark_conf if "=" not in c]
    if bad:
        raise FraudkitError(f"--spark-conf takes KEY=VALUE, got {bad[0]!r} (e.g. spark.driver.memory=6g)")
    pool = None if seed_pool is None else SeedPool.load(seed_pool)
    if labels is None and (train_until is not None or label_delay != "0D" or label_coverage is not None):
        raise FraudkitError("--train-until, --label-delay and --label-coverage go with --labels (your own labels)")
    own = None if labels is None else OwnLabels.of(labels, train_until=train_until, label_delay=label_delay,
                                                   label_coverage=label_coverage)
    result = scoring.score_dataset(data, out, stages=[s.strip() for s in stages.split(",") if s.strip()],
                                   rules=rules, seed=seed, train=train, target_precision=target_precision,
                                   seed_pool=pool, force=force, progress=Progress("score", enabled=not quiet),
                                   labels=own, engine=engine, spark_master=spark_master,
                                   spark_config=dict(c.split("=", 1) for c in spark_conf) or None,
                                   train_engine=train_engine, side_by_side=side_by_side)
    click.echo(result.describe())


@main.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Dataset with the labels table (default: the one the run scored).")
@click.option("--format", "fmt", type=click.Choice(["markdown", "csv"]), default="markdown", show_default=True)
def evaluate(run, data, fmt):
    """The arms-race table: recall by stage and combined, look-alike false-positive rates, precision."""
    table = metrics.evaluate_run(run, data=data)
    click.echo(metrics.format_evaluation(table, fmt, operating_point=metrics.run_operating_point(run)))


@main.command()
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Dataset folder (default: simulate the built-in demo).")
@click.option("--scenario", default="demo-small", show_default=True, help="Demo scenario when --data is not given.")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              show_default=True, help="Reports folder; the report goes to <out>/<run-id>/.")
@click.option("--run-id", default=None, help="Run id (default: derived from the date and data fingerprint).")
@click.option("--date", "as_of", default=None, help="Report as of this date (YYYY-MM-DD), for scheduled runs.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--train", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Labelled training dataset: models and thresholds are fitted on it (the demo simulates one; "
                   "with --data and no --train, unsupervised defaults).")
@click.option("--labels", "labels", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Your own labels (the label store `fraudkit label` appends to): the run trains on them and "
                   "seeds the graph stage with their fraud verdicts (instead of --train).")
@click.option("--review", "review", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A filled review sample (from `fraudkit review`, or the sample an earlier report drew): "
                   "precision, prevalence, recall and each action's collateral are estimated from its verdicts.")
@click.option("--review-n", type=int, default=200, show_default=True,
              help="Accounts in the review sample the report draws for you to label (in the run data).")
@click.option("--loop-windows", type=int, default=4, show_default=True,
              help="Windows of the closed loop in step 5 (0: skip the loop).")
@click.option("--keep-runs", type=int, default=10, show_default=True,
              help="Keep the private run data (raw keys, <out>/.runs/) of this many newest good reports; "
                   "published (masked) reports are never deleted.")
@click.option("--notebooks", "notebooks_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Folder with the five step notebooks (default: the checkout's notebooks/).")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
def report(data, scenario, out, run_id, as_of, seed, train, labels, review, review_n, loop_windows, keep_runs,
           notebooks_dir, quiet):
    """Run the five step notebooks with papermill and render the HTML report."""
    result = build.build_report(data=data, train=train, scenario=scenario, out=out, run_id=run_id, as_of=as_of, seed=seed,
                                loop_windows=loop_windows, keep_runs=keep_runs, notebooks_dir=notebooks_dir,
                                progress=not quiet, labels=labels, review=review, review_n=review_n)
    click.echo(result.describe())
    if not result.ok:
        sys.exit(1)


@main.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--n", "n", type=int, default=200, show_default=True, help="Accounts to review.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="CSV to write the review queue to (not inside RUN).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random strata.")
def review(run, n, out, seed):
    """A sample of a run's accounts for analysts to label: top risk, uncertain and a random sample.

    Fill the verdict column with fraud, honest or unsure, then run `fraudkit label RUN FILE --store LABELS`.
    """
    queue = reviewing.review_queue(run, n=n, seed=seed)
    reviewing.write_review(queue, out, run_dir=run)
    counts = queue["stratum"].value_counts()
    click.echo(f"{len(queue)} accounts to review in {out}: "
               + ", ".join(f"{counts.get(s, 0)} {s}" for s in reviewing.STRATA)
               + ". Fill the verdict column (fraud, honest or unsure), then: "
               f"fraudkit label {run} {out} --store labels.csv")


@main.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("reviewed", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--store", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The label store (CSV) the verdicts are appended to; created when absent. "
                   "`fraudkit score DATA --labels STORE` trains on it.")
@click.option("--reviewer", default=None, help="Reviewer name for rows that leave the reviewer column empty.")
@click.option("--time", "when", default=None,
              help="When the verdicts became known (default: the end of the data the run scored).")
def label(run, reviewed, store, reviewer, when):
    """Append a filled review's verdicts to the label store and estimate the run's precision from them."""
    verdicts, estimate = reviewing.record_verdicts(run, reviewed, store, reviewer=reviewer, time=when)
    click.echo(f"{len(verdicts)} verdict(s) appended to {store} "
               f"({int((verdicts['label'] == 'fraud').sum())} fraud, {int((verdicts['label'] == 'honest').sum())} honest)")
    click.echo(estimate.describe())


@main.command("graph-benchmark")
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--protocol", type=click.Choice(["full", "semi", "unsupervised"]), default="full", show_default=True)
@click.option("--trials", type=int, default=10, show_default=True)
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the per-trial results to this CSV.")
@click.option("--methods", default=None, help="Comma-separated subset of methods.")
def graph_benchmark(data, protocol, trials, out, methods):
    """GADBench-style benchmark on a generic graph-fraud folder (nodes, edges, events)."""
    table = graphbench.run_benchmark(data, protocol=protocol, trials=trials, out=out,
                          methods=None if methods is None else methods.split(","))
    click.echo(graphbench.format_table(table))


@main.command()
@click.argument("name", type=click.Choice(["tolokers", "instafake"]))
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
def adapt(name, src, out):
    """Convert a real labelled data set into the generic graph-fraud format."""
    click.echo(adapters.convert(name, src, out).describe())


@main.group()
def rules():
    """Check, backtest and compare rule sets (YAML)."""


@rules.command("check")
@click.argument("ruleset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Check column references against this dataset's features.")
def rules_check(ruleset, data):
    """Load and compile a rule set; report every problem with the rule it is in."""
    click.echo(frames.check_ruleset(ruleset, data=data))


@rules.command("backtest")
@click.argument("ruleset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--against", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A second rule-set version to diff against on the same data.")
@click.option("--format", "fmt", type=click.Choice(["markdown", "csv"]), default="markdown", show_default=True)
def rules_backtest(ruleset, data, against, fmt):
    """Per rule: hits, precision, recall, overlap and lift; optionally a version diff."""
    click.echo(backtest.backtest_command(ruleset, data, against=against, fmt=fmt))




# --- private helpers ----------------------------------------------------------------------------


def _debug(ctx) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get("FRAUDKIT_DEBUG", "") not in ("", "0")


def _describe(e: BaseException) -> tuple[str, int]:
    """The message and exit code of a failure."""
    if isinstance(e, FraudkitError):
        return str(e), 2
    if isinstance(e, KeyboardInterrupt):
        return "interrupted; outputs are written atomically, so nothing half-written was left in place", 130
    if isinstance(e, MemoryError):
        return ("out of memory. Fix: score a smaller time window (--as-of) or sample of the data, or run on a "
                "machine with more memory"), 1
    if isinstance(e, OSError):
        where = f" {e.filename}" if e.filename else ""
        fixes = {errno.ENOSPC: "free disk space or write the output to another disk",
                 errno.EDQUOT: "free disk space or write the output to another disk",
                 errno.EACCES: "choose a folder you may write to, or change its permissions",
                 errno.EPERM: "choose a folder you may write to, or change its permissions",
                 errno.EROFS: "the file system is read-only: write the output elsewhere",
                 errno.ENOENT: "check the path"}
        fix = fixes.get(e.errno, "check the path and the disk")
        return f"the system refused{where}: {e.strerror or e}. Fix: {fix}", 1
    if "No space left on device" in str(e):  # DuckDB's IOException (spilling, writing) is not an OSError
        text = str(e).strip().splitlines()[0]
        return (f"the system refused: {text[:300]}. Fix: free disk space, or write the output to another disk; "
                f"DuckDB spills to {connection.TEMP_DIRECTORY_ENV} (default <system temp>/fraudkit-duckdb), which "
                "may point to a disk with room"), 1
    if "java.lang.OutOfMemoryError" in str(e):  # Spark's JVM (a Py4JJavaError carries the Java trace as text)
        return ("Spark ran out of memory (java.lang.OutOfMemoryError in its JVM). Fix: give the driver more memory "
                "(--spark-conf spark.driver.memory=12g; local sessions run their tasks in the driver), or run on a "
                "cluster (--spark-master)"), 1
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return (f"unexpected {type(e).__name__}{': ' + text[:300] if text else ''}. This input is one fraudkit does "
            "not handle yet (or a bug): run again with --debug for the traceback and report it"), 1


if __name__ == "__main__":  # pragma: no cover
    main()
