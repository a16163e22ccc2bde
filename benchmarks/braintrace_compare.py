"""braintrace's online learners on the configurations rtrlx's targets name: speed and gradients.

Run it in its own environment, never rtrlx's (braintrace 0.2.6 is the last release for
Python 3.11):

    python3.11 -m venv /tmp/btenv && /tmp/btenv/bin/pip install braintrace==0.2.6
    /tmp/btenv/bin/python benchmarks/braintrace_compare.py benchmarks/braintrace.json

It times, after compilation, the median of 5 runs of a whole sequence:
  - GRU n=128, input 16, batch 16, T=1000: D_RTRL (braintrace's diagonal RTRL), and BPTT
    through the same model (brainstate's autodiff over a scan) for its own ratio;
  - LRU d_hidden=256, d_model 16, batch 16, T=10000: D_RTRL and BPTT.
and compares gradients on a small GRU (n=8, T=50, batch 4): the cosine of D_RTRL's and
pp_prop's gradient with BPTT's for each weight, and the norm of the reset-gate weight's.
rtrlx's side of the comparison is `rtrlx bench --suite default` and
benchmarks/gru_gate_grads.py.
"""

import json
import statistics
import sys
import time

import brainstate
import braintrace
import jax
import jax.numpy as jnp
import numpy as np


class Net(brainstate.nn.Module):
    """A recurrent cell and a linear readout of its output."""

    def __init__(self, cell, hidden, out):
        super().__init__()
        self.cell = cell
        self.out = braintrace.nn.Linear(hidden, out)

    def update(self, x):
        """One step: the readout of the cell's new output."""
        return self.out(self.cell(x))


def make(kind, n, d, out):
    """The GRU (n units) or LRU (d_hidden n, d_model d) network with ``out`` outputs."""
    if kind == "gru":
        return Net(braintrace.nn.GRUCell(d, n), n, out)
    lru = braintrace.nn.LRUCell(d, n)
    return Net(lru, d, out)


def online_grads(kind, algorithm, n, d, batch, xs, ys, seed=0):
    """``(model, run)``: ``run(xs, ys)`` is the jitted online gradient of the summed loss."""
    brainstate.random.seed(seed)
    model = make(kind, n, d, ys.shape[-1])
    learner = braintrace.compile(model, algorithm, xs[0], batch_size=batch)

    def loss(x, y):
        return jnp.mean((learner(x) - y) ** 2)

    @brainstate.transform.jit
    def run(xs, ys):
        brainstate.nn.init_all_states(model, batch_size=batch)
        if hasattr(learner, "reset_state"):  # the eligibility traces too
            learner.reset_state(batch_size=batch)
        return learner.etrace_grad(xs, ys, step_fn=loss, reduction="sum")

    return model, run


def bptt_grads(kind, n, d, batch, ys_dim, seed=0):
    """``(model, run)``: ``run(xs, ys)`` is the jitted BPTT gradient of the summed loss."""
    brainstate.random.seed(seed)
    model = make(kind, n, d, ys_dim)
    brainstate.nn.init_all_states(model, batch_size=batch)
    params = model.states(brainstate.ParamState)

    @brainstate.transform.jit
    def run(xs, ys):
        brainstate.nn.init_all_states(model, batch_size=batch)

        def total():
            def body(x, y):
                return jnp.mean((model(x) - y) ** 2)

            return jnp.sum(brainstate.transform.for_loop(body, xs, ys))

        return brainstate.transform.grad(total, params)()

    return model, run


def timed(run, *args, repeats=5):
    """``(median seconds, compile seconds)`` of ``run(*args)``."""
    start = time.perf_counter()
    jax.block_until_ready(run(*args))
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(run(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times), compile_s


def speed(kind, n, d, batch, steps):
    """D_RTRL and BPTT per-step times on one configuration, printed and returned."""
    key = jax.random.key(0)
    xs = jax.random.normal(key, (steps, batch, d))
    ys = jnp.zeros((steps, batch, 8))
    out = {"cell": kind, "hidden": n, "input": d, "batch": batch, "T": steps}
    _, run = online_grads(kind, "d_rtrl", n, d, batch, xs, ys)
    seconds, compile_s = timed(run, xs, ys)
    out["d_rtrl_ms_per_step"] = 1e3 * seconds / steps
    out["d_rtrl_steps_per_second"] = steps / seconds
    out["d_rtrl_compile_s"] = compile_s
    _, run = bptt_grads(kind, n, d, batch, 8)
    seconds, _ = timed(run, xs, ys)
    out["bptt_ms_per_step"] = 1e3 * seconds / steps
    out["d_rtrl_vs_own_bptt"] = out["d_rtrl_ms_per_step"] / out["bptt_ms_per_step"]
    print(json.dumps(out), flush=True)
    return out


def flat(tree):
    """Every leaf of ``tree``, flattened, by its path."""
    return {
        "/".join(str(p) for p in path): np.asarray(leaf).ravel()
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


def gradients(n=8, d=4, batch=4, steps=50):
    """Per-weight cosine and norm of D_RTRL's and pp_prop's gradients against BPTT's."""
    xs = jax.random.normal(jax.random.key(1), (steps, batch, d))
    ys = jax.random.normal(jax.random.key(2), (steps, batch, 8))
    _, bptt = bptt_grads("gru", n, d, batch, 8, seed=3)
    reference = flat(bptt(xs, ys))
    out = {}
    for algorithm in ("d_rtrl", "pp_prop"):
        options = {"decay_or_rank": 0.99} if algorithm == "pp_prop" else {}
        brainstate.random.seed(3)
        model = make("gru", n, d, 8)
        learner = braintrace.compile(model, algorithm, xs[0], batch_size=batch, **options)

        def loss(x, y, learner=learner):
            return jnp.mean((learner(x) - y) ** 2)

        grads = flat(learner.etrace_grad(xs, ys, step_fn=loss, reduction="sum"))
        rows = {}
        for name, g in grads.items():
            ref = reference.get(name)
            if ref is None:
                continue
            cos = float(g @ ref / (np.linalg.norm(g) * np.linalg.norm(ref) + 1e-30))
            rows[name] = {
                "cosine": cos,
                "norm": float(np.linalg.norm(g)),
                "bptt_norm": float(np.linalg.norm(ref)),
            }
        out[algorithm] = rows
    print(json.dumps(out, indent=1), flush=True)
    return out


if __name__ == "__main__":
    report = {
        "braintrace": braintrace.__version__,
        "jax": jax.__version__,
        "gradients": gradients(),
        "speed": [speed("gru", 128, 16, 16, 1000), speed("lru", 256, 16, 16, 10_000)],
    }
    with open(sys.argv[1] if len(sys.argv) > 1 else "braintrace.json", "w") as fh:
        json.dump(report, fh, indent=2)
