"""rtrlx's side of the braintrace gradient comparison: per-gate cosine with BPTT on a GRU.

Usage: .venv/bin/python benchmarks/gru_gate_grads.py [benchmarks/gru_gate_grads.json]
GRU n=8, input 4, batch 4, T=50, float64, mean-squared error to random targets; for
snap:1, snap:2 and rtrl, the cosine of each gate's weights' gradient (reset, update,
candidate; input and recurrent weights and biases together) with BPTT's, and its norm.
"""

import json
import sys

import equinox as eqx
import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
import rtrlx  # noqa: E402


def main(path: str) -> None:
    """Write the table to ``path`` and print it."""
    n, d, batch, steps = 8, 4, 4, 50
    cell = rtrlx.cells.GRU(d, n, key=jax.random.key(0))
    head = eqx.nn.Linear(n, 8, key=jax.random.key(1))
    xs = jax.random.normal(jax.random.key(2), (steps, batch, d))
    ys = jax.random.normal(jax.random.key(3), (steps, batch, 8))

    def gates(grads):
        g = grads[0]
        rows = {}
        for i, gate in enumerate(("reset", "update", "candidate")):
            part = slice(i * n, (i + 1) * n)
            rows[gate] = np.concatenate(
                [np.ravel(g.w_x[part]), np.ravel(g.w_h[part]), g.b_x[part], g.b_h[part]]
            )
        return rows

    def grads_of(learner):
        return gates(rtrlx.sequence_grads(learner, cell, head, rtrlx.losses.mse, xs, ys)[1])

    reference = grads_of(rtrlx.bptt())
    out = {}
    for spec in ("snap:1", "snap:2", "rtrl"):
        got = grads_of(rtrlx.learners.make(spec))
        out[spec] = {
            gate: {
                "cosine": float(got[gate] @ reference[gate])
                / float(np.linalg.norm(got[gate]) * np.linalg.norm(reference[gate])),
                "norm": float(np.linalg.norm(got[gate])),
                "bptt_norm": float(np.linalg.norm(reference[gate])),
            }
            for gate in reference
        }
    print(json.dumps(out, indent=1))
    with open(path, "w") as fh:
        json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/gru_gate_grads.json")
