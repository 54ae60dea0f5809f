"""Shared fixtures: a tiny, valid, hand-made dataset in every contract table.

``tiny_tables`` returns a fresh dict of DataFrames per test (mutate it freely);
``tiny_dir`` writes it as Parquet to a temporary folder. Both follow
``fraudkit.data.contract`` exactly; ``tests/data/test_contract.py`` checks that.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

# test modules live in sub-folders mirroring the package; the shared helpers (_toy, _report_build) live here
sys.path.insert(0, str(Path(__file__).resolve().parent))

T = pd.Timestamp


def pytest_collection_modifyitems(config, items):
    """The files marked ``slow(seconds)`` first, longest first; then the others, most tests first.

    Under ``--dist loadfile`` pytest-xdist hands the files out in this order (scripts/test.sh passes
    ``--no-loadscope-reorder``: its own order, most tests first, put the Spark parity file's five tests and
    their four minutes last, and one worker ran on alone at the end). Longest first, the long files run beside
    the many short ones, which then fill in. The seconds are this machine's, the whole file, two workers. The
    files that use Spark go out as one unit (:func:`pytest_xdist_make_scheduler`), where the first of them is.
    """
    files: dict[str, list] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::")[0], []).append(item)

    def seconds(f):
        marks = [m for it in files[f] for m in it.iter_markers("slow")]
        return max((float(m.args[0]) if m.args else 1.0 for m in marks), default=0.0)

    slow = sorted((f for f in files if seconds(f)), key=lambda f: -seconds(f))  # stable: ties keep order
    rest = sorted((f for f in files if not seconds(f)), key=lambda f: -len(files[f]))
    items[:] = [it for f in slow + rest for it in files[f]]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile`` with every file that takes the ``spark`` fixture in one unit of work: one worker runs
    them one after another on one Spark session, whose JVM compiles Spark's code once, instead of two JVMs
    compiling it side by side (a local Spark run kept 1.6-1.7 of the 2 cores busy). Other files go one by one.
    A full run here: 602 s, against 625-669 s with two Spark sessions (the parity file first or last).
    """
    if config.getvalue("dist") != "loadfile":
        return None
    import re

    from xdist.scheduler import LoadFileScheduling

    takes_spark = re.compile(r"^def \w+\([^)]*\bspark\b", re.M)  # a test or fixture with a ``spark`` parameter
    root = Path(__file__).resolve().parent
    spark_files = {p.relative_to(config.rootpath).as_posix() for p in root.rglob("test_*.py")
                   if takes_spark.search(p.read_text(encoding="utf-8"))}

    class SparkFilesTogether(LoadFileScheduling):
        def _split_scope(self, nodeid):
            scope = super()._split_scope(nodeid)
            return "spark" if scope in spark_files else scope

    return SparkFilesTogether(config, log)


def make_tiny_tables() -> dict[str, pd.DataFrame]:
    """Six accounts, three devices, a promotion, a few notes, interactions and orders; every table valid."""
    ts = lambda *s: pd.to_datetime(list(s), format="ISO8601")  # noqa: E731
    accounts = pd.DataFrame({
        "account_id": [1, 2, 3, 4, 5, 6],
        "registered_at": ts("2024-01-01 09:00", "2024-01-02 10:00", "2024-01-03 11:00", "2024-02-01 12:00",
                            "2024-02-01 12:01", "2024-02-01 12:02"),
        "register_channel": ["app", "web", "app", "third_party", "third_party", "third_party"],
        "phone": ["13812345678", "13912345678", None, "17000000001", "17000000002", "17000000003"],
    })
    bindings = pd.DataFrame({
        "account_id": [1, 4, 5],
        "provider": ["wechat", "qq", "qq"],
        "binding_id": ["wx_a1", "qq_9001", "qq_9002"],
        "bound_at": ts("2024-01-05", "2024-02-01 13:00", "2024-02-01 13:01"),
    })
    devices = pd.DataFrame({
        "device_id": [100, 101, 102],
        "model": ["iPhone14,2", "SM-G9910", "SM-G9910"],
        "os": ["ios", "android", "android"],
        "os_version": ["16.4", "12", "12"],
        "screen": ["1170x2532", "1080x2400", "1080x2400"],
        "app_version": ["8.1.0", "8.1.0", "8.1.0"],
        "is_emulator": [False, False, True],
        "is_rooted": [False, True, True],
        "fingerprint": ["fp_aaa", "fp_bbb", "fp_bbb"],
        "first_seen": ts("2024-01-01 09:00", "2024-01-02 10:00", "2024-02-01 12:00"),
    })
    logins = pd.DataFrame({
        "login_id": [1000, 1001, 1002, 1003],
        "account_id": [1, 2, 4, 5],
        "device_id": [100, 101, 102, 102],
        "ip": ["10.1.2.3", "10.1.2.4", "110.80.1.7", "110.80.1.7"],
        "ts": ts("2024-03-01 08:00", "2024-03-01 09:00", "2024-03-01 03:00", "2024-03-01 03:00:05"),
    })
    notes = pd.DataFrame({
        "note_id": [500, 501, 502],
        "author_id": [1, 2, 3],
        "created_at": ts("2024-02-20", "2024-02-21", "2024-02-22"),
        "category": ["food", "travel", "beauty"],
    })
    interactions = pd.DataFrame({
        "event_id": range(9000, 9010),
        "ts": ts("2024-03-01 08:05", "2024-03-01 08:06", "2024-03-01 09:10", "2024-03-01 03:01",
                 "2024-03-01 03:01:01", "2024-03-01 03:01:02", "2024-03-01 03:01:03", "2024-03-02 10:00",
                 "2024-03-02 10:01", "2024-03-02 21:00"),
        "account_id": [1, 1, 2, 4, 4, 5, 5, 6, 6, 3],
        "device_id": pd.array([100, 100, 101, 102, 102, 102, 102, None, None, None], dtype="Int64"),
        "ip": ["10.1.2.3", "10.1.2.3", "10.1.2.4", "110.80.1.7", "110.80.1.7", "110.80.1.7", "110.80.1.7",
               None, None, "10.1.2.9"],
        "action": ["view", "like", "view", "like", "collect", "like", "collect", "view", "follow", "comment"],
        "target_id": [501, 501, 500, 502, 502, 502, 502, 500, 1, 500],
    })
    merchants = pd.DataFrame({"merchant_id": [70, 71], "category": ["beauty", "electronics"]})
    products = pd.DataFrame({
        "product_id": [800, 801, 802],
        "merchant_id": [70, 71, 71],
        "category": ["lipstick", "phone", "earbuds"],
        "price": [199.0, 5999.0, 899.0],
        "discount": [0.2, 0.1, 0.0],
        "limited_stock": [False, True, False],
    })
    promotions = pd.DataFrame({
        "promotion_id": [60],
        "name": ["Double 11"],
        "starts_at": ts("2024-03-01 00:00"),
        "ends_at": ts("2024-03-03 00:00"),
    })
    orders = pd.DataFrame({
        "order_id": [7000, 7001, 7002, 7003],
        "ts": ts("2024-03-01 20:00:00", "2024-03-01 20:00:01", "2024-03-01 20:00:02", "2024-03-02 11:00"),
        "account_id": [4, 5, 6, 1],
        "device_id": pd.array([102, 102, None, 100], dtype="Int64"),
        "ip": ["110.80.1.7", "110.80.1.7", None, "10.1.2.3"],
        "product_id": [801, 801, 801, 800],
        "quantity": [1, 1, 2, 1],
        "paid_price": [5399.1, 5399.1, 10798.2, 159.2],
        "coupon_id": ["c1", "c2", None, None],
        "promotion_id": pd.array([60, 60, 60, None], dtype="Int64"),
        "address": ["Shanghai Pudong Road 1 room 101", "Shanghai Pudong Road 1 room 102",
                    "Shanghai Pudong Road 1 room 103", "Beijing Chaoyang 9"],
        "receiver_phone": ["17000000001", "17000000002", "17000000003", "13812345678"],
        "received_at": pd.to_datetime(["2024-03-04 10:00", None, None, "2024-03-05 09:00"], format="ISO8601"),
    })
    coupon_claims = pd.DataFrame({
        "claim_id": [300, 301, 302],
        "ts": ts("2024-03-01 00:00:01", "2024-03-01 00:00:02", "2024-03-01 00:00:03"),
        "account_id": [4, 5, 6],
        "device_id": pd.array([102, 102, None], dtype="Int64"),
        "ip": ["110.80.1.7", "110.80.1.7", None],
        "promotion_id": [60, 60, 60],
        "coupon_id": ["c1", "c2", "c3"],
    })
    list_entries = pd.DataFrame({
        "entry_id": [1, 2],
        "list_type": ["blacklist", "graylist"],
        "list_name": ["proxy_ips", "suspect_devices"],
        "entity_type": ["ip", "device"],
        "entity_id": ["110.80.1.7", "102"],
        "scope": ["global", "promotion:60"],
        "reason": ["known proxy", "emulator"],
        "added_at": ts("2024-02-01", "2024-02-28"),
        "expires_at": pd.to_datetime([None, "2024-03-10"]),
    })
    intelligence = pd.DataFrame({
        "date": ts("2024-02-01", "2024-02-01"),
        "item": ["aged_account", "like_per_100"],
        "price": [8.5, 3.0],
        "source": ["forum_a", "forum_a"],
    })
    labels = pd.DataFrame({
        "entity_type": ["account", "account", "account", "account"],
        "entity_id": [4, 5, 6, 2],
        "typology": ["device_farm", "device_farm", "group_scalper", "honest_shared_ip"],
        "campaign_id": ["farm1", "farm1", "scalp1", None],
    })
    return {k: v for k, v in locals().items() if isinstance(v, pd.DataFrame)}


@pytest.fixture
def tiny_tables() -> dict[str, pd.DataFrame]:
    """A fresh, valid dict of every contract table (labels included)."""
    return make_tiny_tables()


def write_tables(tables, folder, fmt="parquet"):
    """Write a dict of tables as ``<table>.parquet`` (or ``.csv``) into ``folder``; return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        if fmt == "csv":
            df.to_csv(folder / f"{name}.csv", index=False)
        else:
            df.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


@pytest.fixture
def tiny_dir(tmp_path, tiny_tables):
    """The tiny tables written as ``<table>.parquet`` into a temporary folder."""
    return write_tables(tiny_tables, tmp_path / "tiny")


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession (1 core, 1 GB) for the whole test session; skips when Spark cannot start."""
    import importlib.util
    import os
    import shutil

    if importlib.util.find_spec("pyspark") is None:
        pytest.skip("pyspark is not installed (pip install -r requirements-spark.txt): Spark parity not tested")
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        pytest.skip("Java is not installed (Debian: openjdk-17-jre-headless): Spark cannot start")
    from fraudkit.data.engine import spark_session

    # the tests' tables are tiny: one shuffle partition, no adaptive re-planning and no code generation at all,
    # expressions interpreted (each of a run's ~450 Spark jobs then costs ~0.2 s less: the micro world's Spark run
    # 212 -> 131 s without whole-stage code generation; without any, 88.5 -> 79.6 s, and with the training pass
    # on Spark 119.5 -> 100.8 s; one run each, 2026-12-07). None of them changes a result: the
    # parity tests compare values, not plans.
    # (The JVM with its quick compiler only and the serial collector, -XX:TieredStopAtLevel=1 -XX:CICompilerCount=1
    # -XX:+UseSerialGC, used 100-114 instead of 155 CPU-seconds for the micro world's Spark run, but the suite's
    # wall time did not move, and in one of three full runs the training-on-Spark parity test then failed with
    # Spark's "Unable to acquire 28 bytes of memory, got 0": not kept. 2026-12-07.)
    session = spark_session("fraudkit-tests", cores=1, memory="1g",
                            config={"spark.sql.shuffle.partitions": "1", "spark.sql.adaptive.enabled": "false",
                                    "spark.sql.codegen.wholeStage": "false",
                                    "spark.sql.codegen.factoryMode": "NO_CODEGEN"})
    yield session
    session.stop()

