#!/usr/bin/env bash
# Create .venv and install fraudkit with the exact pinned dependency set.
# Idempotent: a second run only checks that everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PY="$cand"; break; fi
  done
fi
[ -n "$PY" ] || { echo "setup: no python3 found; install Python 3.11" >&2; exit 1; }
"$PY" - <<'PYCHK' || { echo "setup: fraudkit needs Python >= 3.11 (found $("$PY" --version))" >&2; exit 1; }
import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)
PYCHK
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$PY" --version)" >&2
  "$PY" -m venv .venv
fi
# A CJK font for the report's charts and pages (Chinese addresses and names; Debian's package, installed when
# running as root with apt-get; otherwise the report falls back to DejaVu Sans and says so in the log).
if ! dpkg -s fonts-noto-cjk >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing Debian's fonts-noto-cjk (CJK text in the report)" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk >/dev/null) \
    || echo "setup: could not install fonts-noto-cjk; CJK text in charts will show as boxes" >&2
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade "pip==25.3"
echo "setup: installing pinned requirements (first run takes a few minutes)" >&2
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
if [ "${FRAUDKIT_SPARK:-0}" = "1" ]; then  # the optional Spark engine (scripts/test.sh always adds it)
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-spark.txt
fi
echo "setup: ok ($(.venv/bin/fraudkit --version))" >&2
