#!/usr/bin/env bash
# A/B of sequence_grads(by_stream=...): each configuration timed with the batch's streams
# together (no) and one after another (yes), batch 16, float32. Writes benchmarks/by_stream/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/by_stream
mkdir -p "$out"
run() {  # name cell hidden learner learner-steps
  for mode in no yes; do
    .venv/bin/rtrlx bench --cell "$2" --hidden "$3" --learners "$4" --steps 200 \
      --learner-steps "$5" --batch 16 --repeats 5 --by-stream "$mode" \
      --json "$out/$1-$mode.json" > /dev/null
  done
}
run rtrl-gru32 gru 32 rtrl 100
run rtrl-gru64 gru 64 rtrl 20
run rtrl-gru128 gru 128 rtrl 10
run ok16-rhn128 rhn 128 ok:16 20
run ok4-rhn128 rhn 128 ok:4 50
run ok16-lstm32 lstm 32 ok:16 100
run snap2-gru64 gru 64 snap:2 20
run snap2-gru16 gru 16 snap:2 200
run kf-gru64 gru 64 kf_rtrl 200
run diag-lru256 lru 256 diag_rtrl 200
