#!/usr/bin/env bash
# Online RL with recurrent cores at an equal recurrent-parameter budget (2000) and equal
# environment steps (200k per seed, 5 seeds run as one vmap), on trace conditioning, three
# POPGym Easy tasks and position-only CartPole:
#  - PPO: RTU (nonlinear and linear) and LRU trained in real time (diag_rtrl traces stored
#    in the rollout, stale gradients) against a GRU trained by truncated BPTT (tbptt:16);
#  - the online actor-critic AC(lambda), updating every step: RTU and LRU (diag_rtrl), and a
#    GRU with snap:1 (no truncated-BPTT variant exists for a per-step update).
# Then benchmarks/rl_table.py prints the tables and writes benchmarks/rl.json and rl.png.
# About 35 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-200000}
SEEDS=${SEEDS:-5}
ENVS=${ENVS:-"TraceConditioning RepeatPreviousEasy RepeatFirstEasy CountRecallEasy CartPolePositionOnly"}
for env in $ENVS; do
  for core in rtu-nonlinear rtu lru gru; do
    .venv/bin/rtrlx rl --agent ppo --env "$env" --core "$core" --steps "$STEPS" \
      --seeds "$SEEDS" --out "benchmarks/rl/ppo-$env-$core" > /dev/null
  done
  for core in rtu-nonlinear lru gru; do
    learner=diag_rtrl; [ "$core" = gru ] && learner=snap:1
    .venv/bin/rtrlx rl --agent ac --env "$env" --core "$core" --learner "$learner" \
      --steps "$STEPS" --seeds "$SEEDS" --out "benchmarks/rl/ac-$env-$core" > /dev/null
  done
done
.venv/bin/python benchmarks/rl_table.py benchmarks/rl
