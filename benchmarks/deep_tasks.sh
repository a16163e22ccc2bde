#!/usr/bin/env bash
# Sequence classification with a 2-block DeepRecurrent LRU stack (d_model 32), online_deep and
# its ablations against BPTT over each sequence (tbptt:PERIOD), one Adam update per sequence.
#  - pixel: scikit-learn's 8x8 digits here (Fashion-MNIST when Debian's package is installed),
#    300 images per stream, 3 seeds (about 5 min on 2 cores);
#  - listops: the LRA recipe with shorter expressions (20 to 200 tokens, padded to 200),
#    2000 training expressions, 200 per stream, 2 seeds (about 10 min).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/rtrlx compare --task pixel --cell deep-lru --layers 2 --hidden 32 \
  --learners online_deep,online_deep:snap1,online_deep:truncated,online_deep:spatial,tbptt:64 \
  --steps 19200 --batch 16 --lr 0.003 --update-every 64 --chunk 1920 --seeds 3 \
  --out benchmarks/deep-pixel
.venv/bin/rtrlx compare --task listops --cell deep-lru --layers 2 --hidden 32 \
  --task-param min_length=20 --task-param max_length=200 \
  --learners online_deep,online_deep:snap1,online_deep:truncated,online_deep:spatial,tbptt:200 \
  --steps 40000 --batch 16 --lr 0.003 --update-every 200 --chunk 4000 --seeds 2 \
  --out benchmarks/deep-listops
