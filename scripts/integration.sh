#!/usr/bin/env bash
# `make integration`: ansible-test integration in the collection copy ($1), with a
# private PostgreSQL server for the postgresql_* targets. Its connection reaches
# the targets as variables pg_* in tests/integration/integration_config.yml (a
# file of the copy only, mode 0600), and the server is removed afterwards.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tree=$1
shift
base=$(mktemp -d /tmp/botops-pg-integration-XXXXXX)
info=$(mktemp)
cleanup() { python "$here/tests/support/pgserver.py" stop "$base"; rm -f "$info"; }
trap cleanup EXIT
python "$here/tests/support/pgserver.py" start "$base" > "$info"
config="$tree/tests/integration/integration_config.yml"
python - "$info" "$config" <<'PY'
import json, os, sys
import yaml
info = json.load(open(sys.argv[1]))
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as handle:
    yaml.safe_dump({"pg_" + key: value for key, value in info.items()}, handle)
PY
cd "$tree"
ansible-test integration --python 3.11 --color no "$@"
