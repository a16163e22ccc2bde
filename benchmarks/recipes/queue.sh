#!/usr/bin/env bash
# The long recipe runs of issue 17, one after another, each resumable: run it again (or after
# a crash, or in the next session) and every run goes on from its last checkpoint; a finished
# run is skipped. A fresh checkout first takes the runs carried from the last session
# (carry.py load: benchmarks/recipes/carried, committed by `carry.py save` before a session
# ends). Waits first for any `rtrlx lm` comparison to end (one job at a time on 2 cores).
# Logs to runs/recipes/queue.log.
#
#   nohup bash benchmarks/recipes/queue.sh [copy|ok-4|ptb|copy-baselines|ptb-baselines|ptb-128|ptb-check|ptb-even|ptb-v2|ptb-v2-even|batch-256] >/dev/null 2>&1 &
#
# copy (the default): OK(16)'s two seeds in stages (each to 250k, 500k, 1M, then the
# published 2M), so that both seeds have run as far as the time given allows; then OK(4) to 1M.
# ok-4: OK(4)'s two seeds in stages (250k, 500k, 1M; about 3 h per 1M steps on one core);
# RTRLX_QUEUE_SEEDS="1" runs one seed only, so that two queues can take a seed and a core each.
# ptb: OK(8) and KF-RTRL seed 0 in stages (50k, 200k, then 1M: OK(8) runs at about 6 steps/s
# on one core here).
# copy-baselines: UORO, TBPTT-25 and KF-RTRL to 1M steps, seeds 0 and 1 (about 2 h in all;
# their curves are in BENCHMARKS.md). ptb-baselines: TBPTT-25 seeds 0 and 1 to 1M (38 min each).
# ptb-128: the PTB recipe at 128 units instead of 256 (runs/recipes/ok-ptb-128), where OK(8)
# costs about an eighth: TBPTT-25 seeds 0 and 1 to 1M, KF-RTRL to 1M (about 2 h on one core), then OK(8)
# to 200k, 500k and 1M (about 11 h in all).
# ptb-check: why OK(8) trails TBPTT-25 at 128 units. OK(8) at the published 256 units to 20k
# steps (set beside the official OK(8) runs' first validations), then OK(8) seed 1 at 128
# units to 200k (OK's own seed spread).
# ptb-even: OK(8) at 256 units with the streams' offsets evenly spaced, as the OK code spaces
# them (--task-param offsets=1; runs/recipes/ok-ptb-even), to 10k and 20k steps, beside the
# random offsets of the recipe and the official runs.
# ptb-v2: the PTB recipe's version 2 (the OK code's 1/32 recurrent gradient and TensorFlow 1's
# Adam; runs/recipes/ok-ptb-v2): OK(8) at 256 units to 10k and 20k, beside version 1's run of
# the same seed, then TBPTT-25 to 20k. The other PTB modes continue version 1's runs.
# ptb-v2-even: version 2 with the official offsets (--task-param offsets=1), seed 1, to 10k
# and 20k (runs/recipes/ok-ptb-v2-even), beside the official runs' first validations.
# batch-256: the copy recipe at batch 256 (runs/recipes/ok-copy-batch/*-b256-*), the batch
# of the official repository's KTP copy runs: UORO and KF-RTRL seed 0 to 200k, 500k, 1M.
#
# RTRLX_QUEUE_CPU=1 pins the runs to that core, one XLA thread, so that the other core stays
# free (and quiet enough for timing) for other work.
set -u
cd "$(dirname "$0")/../.."
mkdir -p runs/recipes
log=runs/recipes/queue.log
.venv/bin/python benchmarks/recipes/carry.py load >>"$log" 2>&1
pin=()
if [ -n "${RTRLX_QUEUE_CPU:-}" ]; then
  pin=(taskset -c "$RTRLX_QUEUE_CPU")
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_cpu_multi_thread_eigen=false"
fi
while pgrep -f "rtrlx lm " >/dev/null; do sleep 60; done  # any flag order
run() {  # recipe learner steps seed [directory [name tag [more flags...]]]
  local out="runs/recipes/${5:-$1}/${2//:/-}${6:-}-seed$4"
  local more=("${@:7}")
  # A run carried from the last session that carry.py could not load is not started afresh:
  # the next `carry.py save` would replace the carried run with the new one.
  if [ -d "benchmarks/recipes/carried/${5:-$1}/${out##*/}" ] && [ ! -f "$out/checkpoint.eqx" ]; then
    echo "$(date -u +%FT%TZ) $out: carried but not loaded (see above); skipped" >>"$log"; return
  fi
  # Done once the run has reached the target (a later stage may have taken it further): its
  # summary's steps, or its checkpoint's (the first entry of the file).
  if .venv/bin/python -c 'import json, os, sys
import numpy as np
out, target = sys.argv[1], int(sys.argv[2])
steps = [0]
if os.path.exists(f"{out}/result.json"):
    steps.append(json.load(open(f"{out}/result.json")).get("steps", 0))
if os.path.exists(f"{out}/checkpoint.eqx"):
    steps.append(int(np.load(open(f"{out}/checkpoint.eqx", "rb"))))
sys.exit(max(steps) < target)' "$out" "$3"
  then
    echo "$(date -u +%FT%TZ) $out: done" >>"$log"; return
  fi
  mkdir -p "$(dirname "$out")"
  [ -f "$out/checkpoint.eqx" ] && more+=(--resume)
  echo "$(date -u +%FT%TZ) $out: start (${more[*]:-fresh})" >>"$log"
  "${pin[@]}" .venv/bin/rtrlx train --recipe "$1" --learner "$2" --steps "$3" --seed "$4" \
      --out "$out" "${more[@]}" >"$out.json.new" 2>>"$log.err"
  local rc=$?  # before any $(...) below resets it
  # The summary replaces the last stage's only when this one ran (a refused resume prints none).
  if [ "$rc" -eq 0 ]; then mv -f "$out.json.new" "$out.json"; else rm -f "$out.json.new"; fi
  echo "$(date -u +%FT%TZ) $out: exit $rc" >>"$log"
}
case "${1:-copy}" in
  copy)
    for target in 250000 500000 1000000 2000000; do
      for seed in 0 1; do run ok-copy ok:16 "$target" "$seed"; done
    done
    for seed in 0 1; do run ok-copy ok:4 1000000 "$seed"; done
    ;;
  ok-4)
    for target in 250000 500000 1000000; do
      for seed in ${RTRLX_QUEUE_SEEDS:-0 1}; do run ok-copy ok:4 "$target" "$seed"; done
    done
    ;;
  ptb)
    for target in 50000 200000 1000000; do
      run ok-ptb@1 ok:8 "$target" 0 ok-ptb
      run ok-ptb@1 kf_rtrl "$target" 0 ok-ptb
    done
    ;;
  copy-baselines)
    for learner in uoro tbptt:25 kf_rtrl; do
      for seed in 0 1; do run ok-copy "$learner" 1000000 "$seed"; done
    done
    ;;
  ptb-baselines)
    for seed in 0 1; do run ok-ptb@1 tbptt:25 1000000 "$seed" ok-ptb; done
    ;;
  ptb-128)
    for seed in 0 1; do run ok-ptb@1 tbptt:25 1000000 "$seed" ok-ptb-128 "" --hidden 128; done
    run ok-ptb@1 kf_rtrl 1000000 0 ok-ptb-128 "" --hidden 128
    for target in 200000 500000 1000000; do
      run ok-ptb@1 ok:8 "$target" 0 ok-ptb-128 "" --hidden 128
    done
    ;;
  ptb-check)
    run ok-ptb@1 ok:8 20000 0 ok-ptb
    run ok-ptb@1 ok:8 200000 1 ok-ptb-128 "" --hidden 128
    ;;
  ptb-even)
    for target in 10000 20000; do
      run ok-ptb@1 ok:8 "$target" 0 ok-ptb-even "" --task-param offsets=1
    done
    ;;
  ptb-v2)
    for target in 10000 20000; do run ok-ptb@2 ok:8 "$target" 0 ok-ptb-v2; done
    run ok-ptb@2 tbptt:25 20000 0 ok-ptb-v2
    ;;
  ptb-v2-even)
    for target in 10000 20000; do
      run ok-ptb@2 ok:8 "$target" 1 ok-ptb-v2-even "" --task-param offsets=1
    done
    ;;
  batch-256)
    for target in 200000 500000 1000000; do
      for learner in uoro kf_rtrl; do
        run ok-copy "$learner" "$target" 0 ok-copy-batch -b256 --batch 256 --checkpoint-every 10000
      done
    done
    ;;
  *) echo "usage: queue.sh [copy|ok-4|ptb|copy-baselines|ptb-baselines|ptb-128|ptb-check|ptb-even|ptb-v2|ptb-v2-even|batch-256]" >&2; exit 2 ;;
esac
