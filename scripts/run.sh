#!/usr/bin/env bash
# Run the daemon in the foreground from this checkout:  scripts/run.sh [CONFIG] [extra `ccdaemon run` options]
# Creates .venv and installs the package (with uvloop) on first use. Stop with Ctrl-C (graceful drain).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
config="${1:-$root/config/example.toml}"
shift || true
venv="$root/.venv"

if [[ ! -x "$venv/bin/ccdaemon" ]]; then
    python="${PYTHON:-python3}"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || { echo "run.sh: Python >= 3.11 required ($python is $("$python" -V 2>&1))" >&2; exit 1; }
    [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    # uvloop (extra "fast") is optional; fall back to the plain install if it cannot be built here.
    "$venv/bin/python" -m pip install --quiet -e "$root[fast]" || "$venv/bin/python" -m pip install --quiet -e "$root"
fi

exec "$venv/bin/ccdaemon" run --config "$config" "$@"
