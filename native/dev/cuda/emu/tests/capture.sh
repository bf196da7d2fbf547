#!/usr/bin/env bash
# Runs each case of capture (capture.cu) and compares what it prints with what CUDA does: recorded
# work runs only when the graph is launched, and every call CUDA forbids during a capture fails
# and invalidates it. Prints one line per case and "N passed, N failed" last.
# usage: capture.sh PATH/TO/capture
set -u
bin=$1
passed=0 failed=0

# expect CASE OUTPUT: the case must exit 0 and print exactly OUTPUT (lines joined by '|').
expect() {
  local name=$1 want=$2 got rc
  got=$("$bin" "$name" 2>&1 | paste -sd '|'); rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 0 ] && [ "$got" = "$want" ]; then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); echo "FAIL $name: exit $rc, expected '$want', got '$got'"
  fi
}

refused="launch-after cudaErrorStreamCaptureInvalidated|end cudaErrorStreamCaptureInvalidated|graph none|capturing 0|x 0"
expect replay "end cudaSuccess|after-capture 0|instantiate cudaSuccess|launch cudaSuccess|launch cudaSuccess|launch cudaSuccess|after-replays 6 6"
expect pinned-readback "copy cudaSuccess|end cudaSuccess|host 2"
expect malloc-relaxed "malloc cudaSuccess|end cudaSuccess"
for c in malloc free stream-sync device-sync pageable-copy; do
  expect $c "call cudaErrorStreamCaptureUnsupported|$refused"
done
expect legacy-stream "call cudaErrorStreamCaptureImplicit|$refused"
expect nested-begin "again cudaErrorIllegalState|end cudaSuccess|end-again cudaErrorIllegalState"

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
