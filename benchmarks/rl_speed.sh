#!/usr/bin/env bash
# Environment steps per second of each agent and core, measured alone on a quiet machine
# (the grid of benchmarks/rl.sh shares the CPU with whatever else runs): RepeatPrevious-Easy,
# the same cores and budget of recurrent parameters (2000), 5 seeds as one vmap, 60k steps
# per seed; the figure is the median over chunks after the first (which compiles).
set -euo pipefail
cd "$(dirname "$0")/.."
for agent in ppo ac; do
  for core in rtu-nonlinear rtu lru gru; do
    learner=""
    if [ "$agent" = ac ] && [ "$core" = gru ]; then learner="--learner snap:1"; fi
    .venv/bin/rtrlx rl --agent "$agent" --env RepeatPreviousEasy --core "$core" $learner \
      --steps 60000 --seeds 5 --chunks 6 --out "benchmarks/rl-speed/$agent-$core" > /dev/null
  done
done
.venv/bin/python benchmarks/rl_table.py benchmarks/rl benchmarks/rl-speed
