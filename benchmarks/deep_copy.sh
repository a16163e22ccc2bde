#!/usr/bin/env bash
# Copy task (pattern 20, delay 10, 8 symbols) with 1 to 4 blocks of a DeepRecurrent LRU stack:
# online_deep and its ablations against BPTT over each episode (tbptt:51 = the whole episode),
# same budget (30,600 steps x 16 streams, one Adam update per episode), 3 seeds.
# Writes benchmarks/deep-copy/L{1..4}/summary.json and curves.png; about 40 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
for layers in 1 2 3 4; do
  .venv/bin/rtrlx compare --task copy --cell deep-lru --layers "$layers" --hidden 32 \
    --learners online_deep,online_deep:snap1,online_deep:truncated,online_deep:spatial,tbptt:51 \
    --steps 30600 --batch 16 --lr 0.003 --update-every 51 --chunk 5100 --seeds 3 \
    --out "benchmarks/deep-copy/L$layers"
done
