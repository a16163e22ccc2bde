"""Tables and curves of `benchmarks/rl.sh`: final return (or return error) per core.

Usage: python benchmarks/rl_table.py benchmarks/rl [benchmarks/rl-speed]
Reads every DIR/*/summary.json, prints one markdown table per agent (mean ± standard
deviation over seeds, with the range, and environment steps per second), with a baseline
column: the uniform random policy's return, or on the prediction tasks the return error of
predicting zero. Writes benchmarks/rl.json and benchmarks/rl.png.
"""

import glob
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

import rtrlx

CORES = ["rtu-nonlinear", "rtu", "lru", "gru"]


def baseline(env_name: str, steps: int = 50_000, seeds: int = 5) -> float:
    """Random policy's mean episode return, or the zero prediction's return error."""
    env, params = rtrlx.rl.make(env_name)

    def run(key):
        k_reset, k_run = jax.random.split(key)
        _, state = env.reset(k_reset, params)

        def step(carry, key):
            state, total = carry
            k_act, k_env = jax.random.split(key)
            action = jax.random.randint(k_act, (), 0, env.num_actions, jnp.int32)
            _, state, reward, done, _ = env.step(k_env, state, action, params)
            total = total + reward
            return (state, jnp.where(done, 0.0, total)), (
                reward,
                done,
                jnp.where(done, total, 0.0),
            )

        _, (rewards, dones, returns) = jax.lax.scan(
            step, (state, jnp.zeros(())), jax.random.split(k_run, steps)
        )
        return rewards, dones, returns

    rewards, dones, returns = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(0), seeds))
    if env.num_actions == 1:
        errors = jax.vmap(rtrlx.rl.return_error, in_axes=(0, 0, None))(
            rewards, jnp.zeros_like(rewards), float(params.gamma)
        )
        return float(errors.mean())
    return float(returns.sum() / dones.sum())


def speed_table(root: str) -> list[dict]:
    """Environment steps per second of each agent and core, from the quiet speed runs."""
    rows = []
    for path in sorted(glob.glob(os.path.join(root, "*", "summary.json"))):
        with open(path) as fh:
            summary = json.load(fh)
        record = summary["records"][0]
        rows.append(
            {
                "agent": record["agent"],
                "core": record["core"],
                "learner": record["learner"],
                "hidden": record["hidden"],
                "recurrent_params": record["recurrent_params"],
                "seeds": len(summary["records"]),
                "total_steps_per_second": record["total_steps_per_second"],
                "steps_per_second_per_seed": record["steps_per_second"],
            }
        )
    print("\n**environment steps per second** (5 seeds as one vmap, RepeatPrevious-Easy)\n")
    print("| agent | core (learner) | units | recurrent params | env steps/s, all seeds |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['agent']} | {r['core']} ({r['learner']}) | {r['hidden']} | "
            f"{r['recurrent_params']} | {r['total_steps_per_second']:,.0f} |"
        )
    return rows


def main(root: str, speed_root: str | None = None) -> None:
    """Print the tables of the runs under ``root``; write rl.json and rl.png beside it."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(root, "*", "summary.json"))):
        with open(path) as fh:
            summary = json.load(fh)
        c = summary["config"]
        runs[(c["agent"], c["env"], c["core"])] = summary
    envs = list(dict.fromkeys(env for _, env, _ in runs))
    baselines = {env: baseline(env) for env in envs}
    table = []
    for agent in ("ppo", "ac"):
        cores = [c for c in CORES if any(k[0] == agent and k[2] == c for k in runs)]
        if not cores:
            continue
        names = {}
        for c in cores:
            first = next(k for k in runs if k[0] == agent and k[2] == c)
            names[c] = f"{c} ({runs[first]['records'][0]['learner']})"

        print(f"\n**{agent}**: final return (mean ± sd over seeds [min, max])\n")
        print("| env | baseline | " + " | ".join(names[c] for c in cores) + " |")
        print("|---|---|" + "---|" * len(cores))
        for env in envs:
            cells = []
            for core in cores:
                summary = runs.get((agent, env, core))
                if summary is None:
                    cells.append("")
                    continue
                records = summary["records"]
                key = "final_msre" if "final_msre" in records[0] else "final_return"
                values = np.array([r[key] for r in records], dtype=float)
                rate = records[0]["total_steps_per_second"]
                cells.append(
                    f"{values.mean():.3g} ± {values.std():.2g} [{values.min():.3g}, "
                    f"{values.max():.3g}]"
                )
                table.append(
                    {
                        "agent": agent,
                        "env": env,
                        "core": core,
                        "learner": records[0]["learner"],
                        "hidden": records[0]["hidden"],
                        "recurrent_params": records[0]["recurrent_params"],
                        "metric": key,
                        "values": values.tolist(),
                        "mean": float(values.mean()),
                        "sd": float(values.std()),
                        "steps": records[0]["steps"],
                        "seeds": len(records),
                        "total_steps_per_second": rate,
                        "curve": {
                            "step": [ch["step"] for ch in summary["chunks"]],
                            "value": [
                                float(np.nanmean([np.nan if v is None else v for v in ch[m]]))
                                for ch in summary["chunks"]
                                for m in ["msre" if key == "final_msre" else "return"]
                            ],
                        },
                    }
                )
            prediction = env in ("TraceConditioning", "TracePatterning")
            label = "msre (zero prediction)" if prediction else "random"
            print(f"| {env} | {baselines[env]:.3g} {label} | " + " | ".join(cells) + " |")
    speed = speed_table(speed_root) if speed_root else []
    with open(os.path.join(os.path.dirname(root.rstrip("/")), "rl.json"), "w") as fh:
        json.dump({"baselines": baselines, "runs": table, "speed": speed}, fh, indent=1)
    plot(table, baselines, os.path.join(os.path.dirname(root.rstrip("/")), "rl.png"))


def plot(table: list, baselines: dict, path: str) -> None:
    """Mean learning curve of each core, one panel per agent and environment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agents = list(dict.fromkeys(r["agent"] for r in table))
    envs = list(dict.fromkeys(r["env"] for r in table))
    fig, axes = plt.subplots(
        len(agents), len(envs), figsize=(3.2 * len(envs), 2.8 * len(agents)), squeeze=False
    )
    for i, agent in enumerate(agents):
        for j, env in enumerate(envs):
            ax = axes[i][j]
            for r in table:
                if r["agent"] == agent and r["env"] == env:
                    ax.plot(
                        r["curve"]["step"],
                        r["curve"]["value"],
                        color=f"C{CORES.index(r['core'])}",
                        label=f"{r['core']} ({r['learner']})",
                    )
            ax.axhline(baselines[env], color="gray", ls="--", lw=1)
            if env in ("TraceConditioning", "TracePatterning"):
                ax.set_yscale("log")
            ax.set_title(f"{agent} · {env}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(True, alpha=0.3)
            if j == 0:
                ax.set_ylabel("return (return error: conditioning)", fontsize=7)
            if i == len(agents) - 1:
                ax.set_xlabel("env steps per seed", fontsize=7)
        axes[i][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main(
        sys.argv[1] if len(sys.argv) > 1 else "benchmarks/rl",
        sys.argv[2] if len(sys.argv) > 2 else None,
    )
