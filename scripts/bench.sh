#!/usr/bin/env bash
# `make bench`: every benchmark, with results written under bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
python bench/sqlite_backup_bench.py "$@"
python bench/postgresql_backup_bench.py "$@"
python bench/collector_bench.py
python bench/fleet_bench.py
