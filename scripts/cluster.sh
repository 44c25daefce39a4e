#!/usr/bin/env bash
# A local cluster in one command: the federation as separate processes on loopback, the
# supervisor and one `ieschain node` per member, each with its own key, data directory and
# QUIC endpoint (issue 13). Everything goes into one folder: keys/, spec.toml, data/<node>/
# (RocksDB, events.jsonl, report.json) and logs/<node>.log.
#
#   scripts/cluster.sh                          # four-party, workload for 60 s, until Ctrl-C
#   scripts/cluster.sh --duration 30s --dir /tmp/fed
#   scripts/cluster.sh --config federations/four-party.toml --workload-for 5m --base-port 7100
#
# Ctrl-C (or --duration) stops every node with SIGTERM, waits for each, and runs
# `ieschain verify` on every data directory. Run it again with the same --dir and the
# cluster continues where it stopped.
set -euo pipefail

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

dir=""
config="four-party"
workload="60s"
duration=""
base_port=7100
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) dir="$2"; shift 2 ;;
        --config) config="$2"; shift 2 ;;
        --workload-for) workload="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --base-port) base_port="$2"; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "cluster.sh: unknown flag $1" >&2; usage 2 >&2 ;;
    esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${IESCHAIN:-$root/target/debug/ieschain}"
if [ -z "${IESCHAIN:-}" ]; then
    "$root/scripts/ensure-deps.sh"
    (cd "$root" && cargo build --quiet --bin ieschain)
fi
if [ -z "$dir" ]; then
    dir="$(mktemp -d "${TMPDIR:-/tmp}/ieschain-cluster.XXXXXX")"
fi
mkdir -p "$dir/logs" "$dir/data"

if [ ! -f "$dir/spec.toml" ]; then
    "$bin" spec --from "$config" --keys "$dir/keys" --out "$dir/spec.toml" --base-port "$base_port" \
        > "$dir/logs/spec.log"
fi
# The members, in the spec's order: [members.NAME] or [members."NAME"].
mapfile -t members < <(sed -n 's/^\[members\.\(.*\)\]$/\1/p' "$dir/spec.toml" | tr -d '"')

# Each node in a process group of its own: Ctrl-C at the terminal reaches this script
# alone, which then stops every node once, with SIGTERM (a node takes a second signal as
# "exit now").
set -m
declare -A pids=()
start() {
    local name="$1"; shift
    RUST_LOG="${RUST_LOG:-info}" "$bin" node --spec "$dir/spec.toml" --key "$dir/keys/$name.key" \
        --data "$dir/data/$name" "$@" >> "$dir/logs/$name.log" 2>&1 &
    pids[$name]=$!
}

stop_all() {
    trap - INT TERM
    echo "cluster.sh: stopping ${#pids[@]} nodes"
    for name in "${!pids[@]}"; do kill -TERM "${pids[$name]}" 2>/dev/null || true; done
    local failed=0
    for name in "${!pids[@]}"; do
        if ! wait "${pids[$name]}"; then
            echo "cluster.sh: $name did not stop cleanly (see $dir/logs/$name.log)" >&2
            failed=1
        fi
    done
    for name in supervisor "${members[@]}"; do
        if ! "$bin" verify --data "$dir/data/$name" > "$dir/logs/$name.verify" 2>&1; then
            echo "cluster.sh: $name's data directory does not verify: $(tail -n 1 "$dir/logs/$name.verify")" >&2
            failed=1
        fi
    done
    [ "$failed" = 0 ] && echo "cluster.sh: every node stopped and every data directory verifies"
    echo "cluster.sh: reports in $dir/data/<node>/report.json"
    exit "$failed"
}
trap stop_all INT TERM

start supervisor --supervisor
for name in "${members[@]}"; do
    start "$name" --workload-for "$workload"
done
cat <<EOF
cluster.sh: the supervisor and ${#members[@]} members run as separate processes on loopback
  folder  $dir
  spec    $dir/spec.toml   (public keys and addresses)
  keys    $dir/keys/       (one secret key per node, mode 600)
  logs    $dir/logs/<node>.log
  events  $dir/data/<node>/events.jsonl
Ctrl-C stops them all.
EOF

if [ -n "$duration" ]; then
    case "$duration" in
        *m) seconds=$(( ${duration%m} * 60 )) ;;
        *s) seconds="${duration%s}" ;;
        *) seconds="$duration" ;;
    esac
    sleep "$seconds" &
    wait $! || true
    stop_all
fi
# Until a signal, or until a node exits on its own.
while true; do
    for name in "${!pids[@]}"; do
        if ! kill -0 "${pids[$name]}" 2>/dev/null; then
            echo "cluster.sh: $name exited (see $dir/logs/$name.log)" >&2
            unset "pids[$name]"
        fi
    done
    sleep 1 &
    wait $! || true
done
