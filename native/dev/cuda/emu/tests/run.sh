#!/usr/bin/env bash
# Runs each case of bug_classes in its own process and checks that the emulator reports it (or,
# for the correct kernel, that it reports nothing and the result is right). Prints one line per
# check and "N passed, N failed" last; exits non-zero when any check failed.
# usage: run.sh PATH/TO/bug_classes
set -u
bin=$1
passed=0 failed=0

# expect NAME ENV PATTERN: the case must fail, and its stderr match PATTERN (extended regex).
expect() {
  local name=$1 env=$2 pattern=$3 err rc
  err=$(env $env "$bin" "$name" 2>&1 >/dev/null); rc=$?
  if [ $rc -ne 0 ] && grep -Eq "$pattern" <<<"$err"; then
    passed=$((passed + 1)); echo "ok   $name ${env:+($env) }reported: $(grep -E "$pattern" <<<"$err" | head -n 1 | cut -c1-150)"
  else
    failed=$((failed + 1)); echo "FAIL $name ${env:+($env) }exit $rc, expected a report matching /$pattern/; got: $(head -c 400 <<<"$err")"
  fi
}

# expect_output NAME ENV CHECK: the case must succeed and its output satisfy the awk program CHECK.
expect_output() {
  local name=$1 env=$2 check=$3 out rc
  out=$(env $env "$bin" "$name" 2>/tmp/emu-test-err.$$); rc=$?
  if [ $rc -eq 0 ] && awk "$check" <<<"$out"; then
    passed=$((passed + 1)); echo "ok   $name ${env:+($env) }ran clean"
  else
    failed=$((failed + 1)); echo "FAIL $name ${env:+($env) }exit $rc; stderr: $(head -c 400 /tmp/emu-test-err.$$)"
  fi
  rm -f /tmp/emu-test-err.$$
}

expect read-past-end "" "invalid read at .* past its end"
expect write-past-end "" "invalid write at .* past its end"
expect host-reads-device-memory "" "host code read device memory"
expect host-writes-device-memory "" "host code wrote device memory"
expect divergent-barrier "" "__syncthreads reached at different call sites"
expect barrier-after-exit "" "__syncthreads reached after some threads of the block exited"
expect blocks-write-one-word "" "blocks \(.*\) and \(.*\) of one launch both wrote the global word"
expect misaligned-vector "" "misaligned float4 access"
# Shared memory nobody wrote reads as NaN, and the race checker names it.
expect_output uninitialized-shared "" '{ if ($1 != "nan" && $1 != "-nan") bad = 1 } END { exit bad }'
expect uninitialized-shared EMU_RACECHECK=1 "read of uninitialized shared word"
# A missing barrier: forward order hides it, reverse order shows it in the results, racecheck names it.
expect_output missing-barrier EMU_ORDER=forward '{ if (NR > 1 && $1 != NR - 2) bad = 1 } END { exit bad }'
expect_output missing-barrier EMU_ORDER=reverse '{ if (NR > 1 && ($1 == "nan" || $1 == "-nan")) n++ } END { exit !(n > 0) }'
expect missing-barrier EMU_RACECHECK=1 "read-after-write hazard at shared word"
expect missing-barrier "EMU_RACECHECK=1 EMU_ORDER=random" "(read-after-write hazard|read of uninitialized shared word)"
expect write-after-read EMU_RACECHECK=1 "write-after-read hazard at shared word"
# No false alarms on a correct kernel, in every order, with every check on.
for order in forward reverse random; do
  expect_output correct-reduction "EMU_RACECHECK=1 EMU_ORDER=$order" \
    'BEGIN { split("-3 -2 -1 0", want, " ") } NR <= 4 { if ($1 != want[NR]) bad = 1 } END { exit bad }'
done

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
