#!/usr/bin/env bash
# One command: set up and run the whole test suite (CI runs exactly this through .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Headless Chromium for the browser tests (Debian's package; root installs it, others get a skip with the reason).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "test: installing Debian's chromium for the browser tests" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "test: could not install chromium; browser tests will be skipped" >&2
fi
# The optional Spark engine, so CI proves both engines (the parity tests): pyspark from requirements-spark.txt,
# and Java 17 from Debian's packages when no java is found (root only; others get a skip with the reason).
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-spark.txt
if ! command -v java >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ] && [ "$(id -u)" = "0" ] \
    && command -v apt-get >/dev/null 2>&1; then
  echo "test: installing Debian's openjdk-17-jre-headless for the Spark parity tests" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null) \
    || echo "test: could not install Java; the Spark tests will be skipped" >&2
fi
# On every core (pytest-xdist): each test file runs on one worker (its module fixtures are built once); the
# builds several files share (the simulated worlds, the micro and hostile reports) are built once per run across
# the workers (tests/_report_build.py). --dist loadfile, not loadgroup: xdist 3.8 names its groups by editing
# item._nodeid, which pytest 9 no longer reads, so loadgroup split every group. --no-loadscope-reorder: the files
# go out in the order tests/conftest.py gives (the slow ones first). Pass -n 0 for one process.
exec .venv/bin/python -m pytest -n auto --dist loadfile --no-loadscope-reorder "$@"
