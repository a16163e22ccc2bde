"""ES on a linear function: the estimate's cosine with the true gradient, call after call.

The claim of arXiv 1910.05268: with the previous estimate as surrogate, the past-descent
estimator converges to the true gradient of a linear function, while plain antithetic ES
stays at its level ``cos^2 ~ n / (n + P + 1)`` (about ``sqrt(n / P)``; the issue's
``sqrt(P / n)`` is inverted) and Guided ES with the same surrogate settles where its
``alpha`` puts it. The theory line is rtrlx's derivation (docs/notes/issue18-evolution.md and
``rtrlx.es.past_descent``): ``sin^2`` shrinks by ``1 - (n - 1) / (P + n - 1)`` per call.
Same keys for every estimator; mean and 95% interval over seeds. Writes JSON and a PNG::

    .venv/bin/python benchmarks/es_linear.py --out benchmarks/es_linear
"""

import argparse
import json
import math

import jax
import jax.numpy as jnp
import numpy as np

from rtrlx.es import antithetic, guided, past_descent


def cosines(est, w, calls, keys):
    """cos(estimate, w) for each call (columns) and seed (rows)."""

    def run(key):
        def call(state, _):
            g, state, _ = est.estimate(lambda p: w @ p, jnp.zeros_like(w), state)
            return state, g @ w / (jnp.linalg.norm(g) * jnp.linalg.norm(w))

        return jax.lax.scan(call, est.init(jnp.zeros_like(w), key=key), None, length=calls)[1]

    return np.asarray(jax.jit(jax.vmap(run))(keys))


def main() -> None:
    """Run the comparison and write ``OUT.json`` and ``OUT.png``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=1000, help="P, the dimension (1000)")
    parser.add_argument("--pairs", type=int, default=10, help="n, antithetic pairs (10)")
    parser.add_argument("--calls", type=int, default=300, help="estimates in a row (300)")
    parser.add_argument("--seeds", type=int, default=32, help="seeds (32)")
    parser.add_argument("--out", default="benchmarks/es_linear", help="output path stem")
    args = parser.parse_args()
    size, pairs = args.params, args.pairs
    w = jax.random.normal(jax.random.key(0), (size,))
    keys = jax.random.split(jax.random.key(1), args.seeds)
    estimators = {
        "antithetic ES": antithetic(pairs, 1.0),
        "past descent (1910.05268)": past_descent(pairs, 1.0),
        "Guided ES, alpha 0.5": guided(pairs, 1.0, alpha=0.5),
        "Guided ES, alpha 0.25": guided(pairs, 1.0, alpha=0.25),
    }
    curves = {name: cosines(est, w, args.calls, keys) for name, est in estimators.items()}
    rho0, rho = pairs / (size + pairs + 1), (pairs - 1) / (size + pairs - 1)
    theory = np.sqrt(1 - (1 - rho0) * (1 - rho) ** np.arange(args.calls))
    summary = {
        name: {
            "mean": c.mean(axis=0).tolist(),
            "ci95": (1.96 * c.std(axis=0, ddof=1) / math.sqrt(args.seeds)).tolist(),
        }
        for name, c in curves.items()
    }
    with open(f"{args.out}.json", "w") as f:
        json.dump({"args": vars(args), "curves": summary, "theory": theory.tolist()}, f)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    calls = np.arange(1, args.calls + 1)
    for name, c in curves.items():
        mean, ci = c.mean(axis=0), 1.96 * c.std(axis=0, ddof=1) / math.sqrt(args.seeds)
        ax.plot(calls, mean, label=name)
        ax.fill_between(calls, mean - ci, mean + ci, alpha=0.25)
    ax.plot(calls, theory, "k--", lw=1, label="theory for past descent")
    ax.axhline(
        math.sqrt(pairs / (pairs + size + 1)),
        color="0.5",
        ls=":",
        lw=1,
        label="sqrt(n / (n + P + 1))",
    )
    ax.set(
        xlabel="estimate (call)",
        ylabel="cosine with the true gradient",
        title=f"linear function, P = {size}, n = {pairs} pairs, {args.seeds} seeds",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(f"{args.out}.png", dpi=120)
    for name, c in curves.items():
        print(
            f"{name}: cos after 1 / 10 / 100 / {args.calls} calls: "
            + " / ".join(f"{c[:, t - 1].mean():.3f}" for t in (1, 10, 100, args.calls))
        )
    print(
        "theory (past descent): "
        + " / ".join(f"{theory[t - 1]:.3f}" for t in (1, 10, 100, args.calls))
    )


if __name__ == "__main__":
    main()
