"""ES on RL: return against function evaluations on CartPole and Pendulum (gymnax).

The environments are gymnax's CartPole-v1 and Pendulum-v1 and rtrlx's position-only
(partially observable) variants of them, which hide the velocities.

Each estimator (plain antithetic ES, Guided ES with the previous estimate as surrogate,
past-descent ES of arXiv 1910.05268) trains the same policy from the same initialisation
with Adam on its estimate of the gradient of ``-(mean return)``. The policy is a GRU of 16
units with a linear head, acting greedily (the argmax of its logits; Pendulum's torque is one
of -2, -1, 0, 1, 2, as in ``rtrlx.rl``); one function evaluation is one episode, and every
perturbation of an iteration sees the same episodes' start states (common random numbers).
Every ``--eval-every`` iterations the unperturbed policy is scored on fresh episodes.
Writes JSON and a PNG::

    .venv/bin/python benchmarks/es_rl.py --out benchmarks/es_rl    # ~5 min on 2 cores
"""

import argparse
import json
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from rtrlx.cells import GRU
from rtrlx.es import antithetic, guided, past_descent

#: name -> (gymnax id, observation entries kept (None: all), episode length)
ENVS = {
    "CartPole-v1": ("CartPole-v1", None, 500),
    "Pendulum-v1": ("Pendulum-v1", None, 200),
    "CartPolePositionOnly": ("CartPole-v1", (0, 2), 500),
    "PendulumPositionOnly": ("Pendulum-v1", (0, 1), 200),
}
TORQUES = jnp.array([-2.0, -1.0, 0.0, 1.0, 2.0])


class Policy(eqx.Module):
    """A GRU and a linear head over the actions."""

    cell: GRU
    head: eqx.nn.Linear

    def __init__(self, obs: int, actions: int, hidden: int, key):
        k1, k2 = jax.random.split(key)
        self.cell = GRU(obs, hidden, key=k1)
        self.head = eqx.nn.Linear(hidden, actions, key=k2)


def episode_return(policy, env, params, keep, length, discrete_torque, key):
    """The return of one greedy episode (steps after the first end count nothing)."""
    k_reset, k_run = jax.random.split(key)
    obs, state = env.reset(k_reset, params)
    h = policy.cell.init_state()

    def step(carry, k):
        obs, state, h, alive, total = carry
        x = obs if keep is None else obs[jnp.array(keep)]
        h = policy.cell(h, x)
        a = jnp.argmax(policy.head(policy.cell.features(h)))
        action = TORQUES[a][None] if discrete_torque else a
        # gymnax >= 1.0 returns (obs, state, reward, terminated, truncated, info)
        obs, state, reward, *ends, _ = env.step(k, state, action, params)
        done = jnp.any(jnp.stack([jnp.asarray(e, bool) for e in ends]))
        total = total + alive * reward
        return (obs, state, h, alive * (1.0 - done), total), None

    carry = (obs, state, h, jnp.ones(()), jnp.zeros(()))
    return jax.lax.scan(step, carry, jax.random.split(k_run, length))[0][-1]


def train(est, env_name, args, key):
    """Train one policy with ``est``; evaluation returns, one per ``--eval-every``."""
    import gymnax

    gid, keep, length = ENVS[env_name]
    env, params = gymnax.make(gid)
    discrete_torque = gid.startswith("Pendulum")
    obs = env.observation_space(params).shape[0] if keep is None else len(keep)
    actions = len(TORQUES) if discrete_torque else env.num_actions
    k_init, k_est, k_run = jax.random.split(key, 3)
    policy = Policy(obs, actions, args.hidden, k_init)
    weights, static = eqx.partition(policy, eqx.is_inexact_array)

    def mean_return(w, keys):
        p = eqx.combine(w, static)
        run = lambda k: episode_return(p, env, params, keep, length, discrete_torque, k)  # noqa: E731
        return jax.vmap(run)(keys).mean()

    opt = optax.adam(args.lr)

    def iteration(carry, key):
        w, opt_state, est_state = carry
        keys = jax.random.split(key, args.episodes)
        g, est_state, _ = est.estimate(lambda v: -mean_return(v, keys), w, est_state)
        updates, opt_state = opt.update(g, opt_state, w)
        return (optax.apply_updates(w, updates), opt_state, est_state), None

    def block(carry, key):
        k_train, k_eval = jax.random.split(key)
        carry, _ = jax.lax.scan(iteration, carry, jax.random.split(k_train, args.eval_every))
        score = mean_return(carry[0], jax.random.split(k_eval, args.eval_episodes))
        return carry, score

    carry = (weights, opt.init(weights), est.init(weights, key=k_est))
    blocks = args.iterations // args.eval_every
    first = mean_return(weights, jax.random.split(k_run, args.eval_episodes))
    _, scores = jax.lax.scan(block, carry, jax.random.split(k_run, blocks))
    return jnp.concatenate([first[None], scores])


def main() -> None:
    """Every estimator on every environment over the seeds; ``OUT.json``, ``OUT.png``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default=",".join(ENVS), help="comma-separated")
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--sigma", type=float, default=0.05)
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--episodes", type=int, default=2, help="episodes per evaluation")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--eval-episodes", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/es_rl")
    args = parser.parse_args()
    n, sigma = args.pairs, args.sigma
    estimators = {
        "antithetic ES": antithetic(n, sigma),
        "Guided ES (previous estimate), alpha 0.5": guided(n, sigma, alpha=0.5),
        "past descent (1910.05268)": past_descent(n, sigma),
    }
    keys = jax.random.split(jax.random.key(0), args.seeds)
    results: dict = {}
    for env_name in args.envs.split(","):
        results[env_name] = {}
        for name, est in estimators.items():
            tic = time.perf_counter()
            run = jax.jit(
                jax.vmap(lambda k, est=est, env_name=env_name: train(est, env_name, args, k))
            )
            scores = np.asarray(run(keys))
            results[env_name][name] = scores.tolist()
            print(
                f"{env_name} | {name}: return start {scores[:, 0].mean():.1f}, end "
                f"{scores[:, -1].mean():.1f} ± {scores[:, -1].std(ddof=1):.1f} "
                f"({time.perf_counter() - tic:.0f} s)",
                flush=True,
            )
    evals_per_iteration = 2 * n * args.episodes
    with open(f"{args.out}.json", "w") as f:
        json.dump(
            {
                "args": vars(args),
                "evaluations_per_iteration": evals_per_iteration,
                "returns": results,
            },
            f,
        )
    _plot(results, args, evals_per_iteration, f"{args.out}.png")


def _plot(results, args, evals, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.8), squeeze=False)
    for ax, (env_name, curves) in zip(axes[0], results.items(), strict=True):
        for name, scores in curves.items():
            s = np.asarray(scores)
            x = np.arange(s.shape[1]) * args.eval_every * evals
            mean, sd = s.mean(axis=0), s.std(axis=0, ddof=1)
            ax.plot(x, mean, label=name)
            ax.fill_between(x, mean - sd, mean + sd, alpha=0.2)
        ax.set(title=env_name, xlabel="episodes (function evaluations)", ylabel="return")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
