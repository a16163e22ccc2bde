r"""The Fast-Slow RNN paper's dynamics study (its section 4.2) on models trained by rtrlx lm.

For each run directory (``rtrlx lm --out DIR``; an FS-RNN and a stacked LSTM, say):

- **rate of change**: the mean squared change of each sub-cell's carried cell state ``c`` per
  character, ``mean_i (c_t,i - c_{t-1},i)^2`` averaged over the validation text (the paper's
  Fig. 4: the slow cell's should be the smallest);
- **gradient against lag**: ``|| dL_t / dc_{t-k} ||`` for k = 0..K, the norm of the gradient
  of one character's loss with respect to each sub-cell's cell state k steps earlier,
  averaged over positions and streams (the paper's Fig. 3: the slow cell's should decay
  slowest). All lags come from one backward pass: a zero perturbation is added to the state
  after every step of a K+1-step unroll and the loss at the end is differentiated with
  respect to the perturbations.

Both use the deterministic step (no dropout; zoneout in its expectation form) from a state
warmed on the preceding text. Writes a JSON and two PNGs::

    .venv/bin/python benchmarks/fs_dynamics.py runs/lm-1m/fs-lstm-2 runs/lm-1m/stacked-lstm-2 \\
        --out benchmarks/fs_dynamics
"""

import argparse
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from rtrlx.cells import state_to_units, units_to_state
from rtrlx.lm import load_model
from rtrlx.tasks.ptb import _corpus


def _parts(cell, state):
    """The carried state by sub-cell (a single cell is one part)."""
    split = getattr(cell, "sub_states", None)
    return split(state) if split is not None else {"cell": state}


def _c(part):
    """The cell state ``c`` of a sub-state (its last leaf; the whole state for a GRU)."""
    return jax.tree.leaves(part)[-1]


def rate_of_change(model, codes, streams: int = 64) -> dict[str, float]:
    """Mean squared change of each part's ``c`` per step over the text."""
    per = (codes.shape[0] - 1) // streams
    xs = codes[: per * streams].reshape(streams, per).T
    init = jax.tree.map(
        lambda a: jnp.broadcast_to(a, (streams, *a.shape)), model.cell.init_state()
    )

    @jax.jit
    def run(xs):
        def body(h, x):
            new = jax.vmap(model.cell)(h, model.inputs(x))
            old_parts = jax.vmap(lambda s: _parts(model.cell, s))(h)
            new_parts = jax.vmap(lambda s: _parts(model.cell, s))(new)
            change = {
                k: jnp.mean(jnp.square(_c(new_parts[k]) - _c(old_parts[k]))) for k in new_parts
            }
            return new, change

        _, changes = jax.lax.scan(body, init, xs)
        return jax.tree.map(lambda a: jnp.mean(a[100:]), changes)  # after a warm-up

    return {k: float(v) for k, v in run(xs).items()}


def gradient_by_lag(model, codes, lags: int = 100, positions: int = 64, warm: int = 200):
    """Mean over positions of ``|| dL_t / dc_{t-k} ||`` per part, for k = 0..lags."""
    rng = np.random.default_rng(0)
    starts = rng.integers(0, codes.shape[0] - warm - lags - 2, positions)
    like = model.cell.init_state()

    def one(start):
        window = jax.lax.dynamic_slice_in_dim(codes, start, warm + lags + 2)
        h = like
        h, _ = jax.lax.scan(lambda h, x: (model.cell(h, model.inputs(x)), None), h, window[:warm])
        xs, target = window[warm : warm + lags + 1], window[warm + lags + 1]
        units0 = state_to_units(h)

        def loss(eps):
            def body(u, inp):
                x, e = inp
                u = state_to_units(model.cell(units_to_state(u, like), model.inputs(x))) + e
                return u, None

            u, _ = jax.lax.scan(body, units0, (xs, eps))
            logits = model.logits(units_to_state(u, like))
            return -jax.nn.log_softmax(logits)[target]

        eps = jnp.zeros((lags + 1, *units0.shape), units0.dtype)
        g = jax.grad(loss)(eps)[::-1]  # [k] = dL / d(state after step t - k)
        grads = jax.vmap(lambda gu: _parts(model.cell, units_to_state(gu, like)))(g)
        return {k: jnp.linalg.norm(_c(v), axis=-1) for k, v in grads.items()}

    out = jax.jit(jax.vmap(one))(jnp.asarray(starts))
    return {k: np.asarray(jnp.mean(v, axis=0)).tolist() for k, v in out.items()}


def main() -> None:
    """Command line: run directories, ``--out`` prefix."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="directories of rtrlx lm runs")
    parser.add_argument("--out", default="benchmarks/fs_dynamics", help="output prefix")
    parser.add_argument("--lags", type=int, default=100)
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    valid = jnp.asarray(_corpus()[1]["valid"])
    result = {}
    for run in args.runs:
        config, model = load_model(run)
        result[config.cell] = {
            "rate_of_change": rate_of_change(model, valid),
            "gradient_by_lag": gradient_by_lag(model, valid, args.lags),
        }
        print(config.cell, json.dumps(result[config.cell]["rate_of_change"]), flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=1)
    fig, ax = plt.subplots(figsize=(7, 4))
    labels, values = [], []
    for cell, r in result.items():
        for part, v in r["rate_of_change"].items():
            labels.append(f"{cell}\n{part}")
            values.append(v)
    ax.bar(range(len(values)), values)
    ax.set_xticks(range(len(values)), labels, fontsize=8)
    ax.set(ylabel="mean squared change of c per step", yscale="log")
    fig.tight_layout()
    fig.savefig(args.out + "_change.png", dpi=120)
    fig, ax = plt.subplots(figsize=(7, 4))
    for cell, r in result.items():
        for part, v in r["gradient_by_lag"].items():
            ax.plot(v, label=f"{cell} {part}")
    ax.set(xlabel="lag k", ylabel="|| dL_t / dc_(t-k) ||", yscale="log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out + "_gradients.png", dpi=120)


if __name__ == "__main__":
    main()
