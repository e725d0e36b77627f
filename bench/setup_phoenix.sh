#!/usr/bin/env bash
# A virtualenv for Arize Phoenix, the ingest peer of bench/server_ingest.py: its
# dependencies would clash with the dev venv's, so it gets one of its own (gitignored).
# Idempotent: a venv whose stamp matches the pin is left alone.
#
#   bash bench/setup_phoenix.sh          # makes .venv-phoenix (or $PHOENIX_VENV)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${PHOENIX_VENV:-$root/.venv-phoenix}"
py="${PYTHON:-python3}"
spec="arize-phoenix==20.26.1"
stamp="$venv/.phoenix-installed"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$spec" ]]; then
    echo "setup_phoenix: $spec up to date ($venv)"
    exit 0
fi
echo "setup_phoenix: installing $spec into $venv" >&2
"$py" -m venv "$venv"
"$venv/bin/pip" install -q "$spec"
echo "$spec" >"$stamp"
