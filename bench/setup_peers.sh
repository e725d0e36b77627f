#!/usr/bin/env bash
# Virtualenvs for the instrumentation benchmark's peers (bench/instrument.py), one each,
# because their pins conflict. Idempotent: a venv whose stamp matches is left alone.
#
#   bash bench/setup_peers.sh            # all peers
#   bash bench/setup_peers.sh otel_v2    # one
#
# The version traps (found on this machine, see NOTES): opentelemetry-instrumentation-
# openai-v2 2.4b0 imports httpx and a module opentelemetry-util-genai renamed after
# 1.1b0; openlit 1.45.0 pins openai<3, so openai 3 is forced over it afterwards (it
# still works); langfuse 5.x needs its keys in the environment (set by the worker).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base="${PEERS_DIR:-$root/.venv-peers}"
py="${PYTHON:-python3}"
openai_pin="openai==3.57.0"

declare -A PEERS=(
    [otel_v2]="$openai_pin opentelemetry-sdk==1.45.2 opentelemetry-instrumentation-openai-v2==2.4b0 opentelemetry-util-genai==1.1b0 httpx"
    [openllmetry]="$openai_pin opentelemetry-sdk opentelemetry-instrumentation-openai==0.62.4"
    [openlit]="openlit==1.45.0 openai<3 opentelemetry-api==1.45.1 opentelemetry-sdk==1.45.1 opentelemetry-exporter-otlp-proto-http==1.45.1 opentelemetry-instrumentation==0.66b1"
    [langfuse]="$openai_pin langfuse==5.0.4"
    # only for bench/import_time.py: OpenLLMetry's SDK entry point, traceloop.sdk. Its
    # dependencies do not resolve on this index (instrumentation-logging stops at 0.59b0,
    # semantic-conventions-ai at 0.5.1), so it installs from a lock file without resolving.
    [traceloop]="--no-deps -r $root/bench/peers/traceloop.txt"
)
# installed after the rest, over the peer's own pins
declare -A FORCE=([openlit]="$openai_pin")

failed=0
names=("$@")
[[ ${#names[@]} -eq 0 ]] && names=(otel_v2 openllmetry openlit langfuse traceloop)

for name in "${names[@]}"; do
    spec="${PEERS[$name]:?unknown peer $name (known: ${!PEERS[*]})}"
    venv="$base/$name"
    stamp="$venv/.peer-installed"
    want="$spec ${FORCE[$name]:-}"
    if [[ -f "$root/bench/peers/$name.txt" ]]; then  # a lock file: its content is the spec
        want+=" $(sha256sum <"$root/bench/peers/$name.txt" | cut -c1-16)"
    fi
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        echo "setup_peers: $name up to date ($venv)"
        continue
    fi
    echo "setup_peers: installing $name into $venv" >&2
    "$py" -m venv "$venv"
    # shellcheck disable=SC2086
    if ! "$venv/bin/pip" install -q $spec; then
        echo "setup_peers: $name did not install; the benchmark skips it" >&2
        failed=1
        continue
    fi
    if [[ -n "${FORCE[$name]:-}" ]]; then
        # shellcheck disable=SC2086
        "$venv/bin/pip" install -q --no-deps ${FORCE[$name]} httpx2
    fi
    echo "$want" >"$stamp"
done
exit "$failed"
