#!/usr/bin/env bash
# Cost of online_deep on a 4-block DeepRecurrent LRU stack, d_model 128, input 1, batch 16:
# time per step at T = 1000 against BPTT and inference (forward + loss) in one run, and XLA's
# working-memory plan at T = 1000, 10000, 100000 (compiled, not run). About 10 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/rtrlx bench --cell deep-lru --layers 4 --hidden 128 --input 1 --batch 16 \
  --steps 1000 --repeats 5 \
  --learners inference,online_deep/stream,online_deep,online_deep:snap1/stream,online_deep:snap1 \
  --memory-steps 1000,10000,100000 --plot benchmarks/deep_memory.png \
  --json benchmarks/deep_cost.json
