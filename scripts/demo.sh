#!/usr/bin/env bash
# One command: set up, simulate the built-in demo platform, run the five steps, render the report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/fraudkit report --scenario demo-small --out reports "$@"
