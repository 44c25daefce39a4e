#!/usr/bin/env bash
# Hour-long random-fault simulations with seeds drawn at random (from /dev/urandom, before
# any run): `ieschain simulate --seed S --until 3600 --faults random`, one after another.
# Prints one line per run (seed, wall time, invariants, rejected envelopes) and a total.
#
#   scripts/hour-runs.sh RUNS [UNTIL_SECS]
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:?number of runs}
until=${2:-3600}
cargo build --bin ieschain >/dev/null 2>&1 || { echo "hour-runs: build failed" >&2; exit 2; }
bin=$(mktemp)
cp target/debug/ieschain "$bin" && chmod +x "$bin"
trap 'rm -f "$bin" "$bin".json' EXIT
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
seeds=$(for _ in $(seq "$runs"); do od -An -N4 -tu4 /dev/urandom | tr -d ' '; done)
echo "hour-runs: commit $commit, $runs runs of $until virtual seconds, seeds drawn first: $(echo $seeds)"
broken=0
slow=0
for seed in $seeds; do
  start=$(date +%s.%N)
  "$bin" simulate --seed "$seed" --until "$until" --faults random --report "$bin.json" >"$bin.out" 2>&1
  rc=$?
  wall=$(echo "$(date +%s.%N) - $start" | bc)
  rejected=$(python3 -c "import json,sys; r=json.load(open('$bin.json')); print(sum(v for k,v in r['rejected'].items() if k!='duplicate'), 'rejected of', sum(r['rejected'].values()), r['rejected'])" 2>/dev/null)
  if [ $rc -eq 0 ]; then verdict="all held"; else verdict="BROKEN: $(grep -m3 BROKEN "$bin.out" | tr '\n' ' ')"; broken=$((broken + 1)); fi
  if [ "$(echo "$wall > 60" | bc)" -eq 1 ]; then slow=$((slow + 1)); fi
  printf 'seed %s: %.1f s, %s; %s\n' "$seed" "$wall" "$verdict" "$rejected"
done
rm -f "$bin.out"
echo "hour-runs: $runs runs, $broken broke an invariant, $slow over 60 s (commit $commit)"
[ "$broken" -eq 0 ]
