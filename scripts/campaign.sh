#!/usr/bin/env bash
# A campaign of the fault-schedule properties (tests/properties.rs): for each generator
# seed, CASES schedules of the small federation and CASES/5 of the four-party federation
# with its protocol workload. Prints one line per generator seed and a total; a failure
# prints proptest's shrunk schedule, which replays with `PROPTEST_RNG_SEED=<seed>` (or as a
# regression test, see TESTING.md).
#
#   scripts/campaign.sh FIRST_SEED LAST_SEED CASES
#   scripts/campaign.sh 101 110 500        # 5,000 small + 1,000 four-party schedules
#   scripts/campaign.sh random 10 500      # 10 generator seeds drawn from /dev/urandom
set -uo pipefail
cd "$(dirname "$0")/.."
first=${1:?first generator seed, or random}
last=${2:?last generator seed, or how many to draw}
cases=${3:?cases per seed}
if [ "$first" = random ]; then
  seeds=$(for _ in $(seq "$last"); do od -An -N4 -tu4 /dev/urandom | tr -d ' '; done)
else
  seeds=$(seq "$first" "$last")
fi
built=$(cargo test --test properties --no-run 2>&1 | grep -o "target/debug/deps/properties-[0-9a-f]*" | head -n1)
bin=$(mktemp)
cp "$built" "$bin" 2>/dev/null && chmod +x "$bin"
trap 'rm -f "$bin"' EXIT
[ -x "$bin" ] || { echo "campaign: cannot build the property tests" >&2; exit 2; }
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "campaign: commit $commit, generator seeds" $seeds", $cases cases each"
failed=0
total=0
for seed in $seeds; do
  for test in no_schedule_breaks_an_invariant no_schedule_breaks_an_invariant_with_the_protocols; do
    n=$cases
    [ "$test" = no_schedule_breaks_an_invariant_with_the_protocols ] && n=$(( (cases + 4) / 5 ))
    start=$(date +%s)
    if out=$(PROPTEST_RNG_SEED=$seed PROPTEST_CASES=$n "$bin" --exact "$test" 2>&1); then
      echo "seed $seed $test: $n passed ($(( $(date +%s) - start )) s)"
    else
      failed=$((failed + 1))
      echo "seed $seed $test: FAILED ($(( $(date +%s) - start )) s)"
      echo "$out" | grep -E "Test failed|minimal failing input|broken" -A 12 | head -40
    fi
    total=$((total + n))
  done
done
echo "campaign: $total schedules, $failed failing runs (commit $commit)"
[ "$failed" -eq 0 ]
