"""Does training run at the learner's speed? Train steps/s against bench steps/s, same run.

    .venv/bin/python benchmarks/train_vs_bench.py --rounds 3 --json benchmarks/train_vs_bench.json

``--batch B`` runs every configuration at B streams instead of 16. Exact RTRL's trace is
3.4 MB per stream on GRU 64: at B = 1 training touches one trace per step, as the bench's
by-stream order does, so train/bench there is the loop's own cost; as B grows, each step's
traces (B x 3.4 MB) leave the caches, which the bench's order never does (BENCHMARKS.md,
"exact RTRL's train/bench against the number of streams").

For each configuration (batch 16 unless ``--batch``, the copy curriculum's input and output
sizes) it measures,
each in a fresh process and interleaved round by round:

- ``train``: ``rtrlx.train`` (Adam every step), milliseconds per step from the chunks'
  ``steps_per_second`` after the first chunk (which holds compilation and the layout choice);
- ``bench``: ``rtrlx.bench.time_per_step``, the learner's ``sequence_grads`` on a random
  sequence of the same sizes (the bench's own layout choice; for ``diag_rtrl`` also its
  streaming step, ``diag_rtrl/stream``, which is what an online loop can run);
- ``online``: the same step scanned over the same sequence with the parameters moved by a
  plain SGD step after every step (no data, no optimizer state, no metrics): what the
  learner's step costs once its parameters change every step, so that XLA cannot hoist the
  work that depends on the parameters alone out of the time loop, as it does in ``bench``;
- ``optimizer``: the optimizer's update alone (Adam on the configuration's parameters), so
  that the table can say what the loop adds beyond the step and the optimizer;
- the same-run matmul rates: a 2048² float32 matmul, and the shape of OK's propagation
  (each stream's ``(rank·rows, S·n) @ (S·n, S·n)``), so that OK's training step can be stated
  as a fraction of what the machine does on the same products; and exact RTRL's trace
  products (``J_h @ M``, GRU 64, every stream of the batch), with one stream's trace in cache
  and with all the traces updated in turn, the two rates between which RTRL's training step
  must fall.

It prints a markdown table (medians over rounds, spreads (max - min) / median) and writes
every figure to the JSON.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

#: (learner, cell, hidden, train steps, train chunk, bench sequence length)
CONFIGS = [
    ("rtrl", "gru", 64, 200, 25, 10),
    ("ok:16", "rhn", 128, 300, 50, 20),
    ("kf_rtrl", "rhn", 128, 3000, 250, 200),
    ("snap:1", "gru", 128, 6000, 500, 1000),
    ("snap:2", "gru", 64, 200, 25, 10),
    ("diag_rtrl", "lru", 256, 6000, 500, 1000),
    ("uoro", "rhn", 128, 6000, 500, 1000),
    ("tbptt:25", "rhn", 128, 6000, 500, 1000),
]
TASK, BATCH = "copy-curriculum", 16


def _median_spread(values: list[float]) -> tuple[float, float]:
    m = statistics.median(values)
    return m, (max(values) - min(values)) / m


def one_train(index: int) -> dict:
    """Milliseconds per training step of configuration ``index``."""
    from rtrlx.train import TrainConfig, train

    learner, cell, hidden, steps, chunk, _ = CONFIGS[index]
    config = TrainConfig(
        task=TASK,
        cell=cell,
        learner=learner,
        hidden=hidden,
        batch=BATCH,
        steps=steps,
        chunk=chunk,
        checkpoint_every=0,
    )
    records: list[dict] = []
    with tempfile.TemporaryDirectory() as out:
        result = train(config, out=out, on_chunk=records.append)
    ms = [1e3 / r["steps_per_second"] for r in records[1:]]
    median, spread = _median_spread(ms)
    return {"ms_per_step": median, "spread": spread, "chunks": len(ms), "layout": result["layout"]}


def one_bench(index: int, stream: bool) -> dict:
    """Milliseconds per step of ``sequence_grads`` for configuration ``index``."""
    from rtrlx.bench.speed import time_per_step
    from rtrlx.tasks import make

    learner, cell, hidden, _, _, steps = CONFIGS[index]
    task, _ = make(TASK)
    r = time_per_step(
        learner + ("/stream" if stream else ""),
        cell,
        hidden=hidden,
        steps=steps,
        batch=BATCH,
        input_size=task.input_size,
        repeats=5,
    )
    return {"ms_per_step": 1e3 * r.seconds_per_step, "spread": r.spread, "by_stream": r.by_stream}


def one_optimizer(index: int) -> dict:
    """Milliseconds per step of the training loop's optimizer update alone (Adam, its state).

    Training costs the learner's step plus this; what ``train`` takes beyond the two is the
    loop's own work (the task's data, the metrics, the curriculum).
    """
    import jax
    import optax
    from jax import lax

    from rtrlx.train import TrainConfig, build

    learner, cell, hidden, *_ = CONFIGS[index]
    config = TrainConfig(task=TASK, cell=cell, learner=learner, hidden=hidden, batch=BATCH)
    run, carry = build(config)
    steps = 500

    @jax.jit
    def updates(params, opt_state):
        def body(state, _):
            params, opt_state = state
            step, opt_state = run.optimizer.update(params, opt_state, params)
            return (optax.apply_updates(params, step), opt_state), None

        return lax.scan(body, (params, opt_state), None, length=steps)[0][0]

    median, spread = _median_spread(_seconds(updates, (carry.params, carry.opt_state)))
    return {"ms_per_step": 1e3 * median / steps, "spread": spread}


def one_online(index: int) -> dict:
    """Milliseconds per step of the learner's step with parameters moved after every step."""
    import equinox as eqx
    import jax
    from jax import lax

    from rtrlx.bench.speed import problem
    from rtrlx.learners import choose_layout, layout_step, make
    from rtrlx.losses import mse
    from rtrlx.tasks import make as make_task

    spec, cell_name, hidden, _, _, steps = CONFIGS[index]
    task, _ = make_task(TASK)
    cell, head, xs, ys = problem(
        cell_name, hidden=hidden, steps=steps, batch=BATCH, input_size=task.input_size
    )
    learner = make(spec)
    layout = choose_layout(learner, cell, head, mse, xs[0], ys[0])
    step = layout_step(learner, layout.name)
    params, static = eqx.partition((cell, head), eqx.is_inexact_array)

    @jax.jit
    def run(params, xs, ys):
        def body(carry, xy):
            state, params = carry
            cell, head = eqx.combine(params, static)
            state, _, grads = step(cell, head, mse, state, *xy)
            return (state, jax.tree.map(lambda p, g: p - 1e-6 * g, params, grads)), None

        state = learner.init(cell, key=jax.random.key(0), batch_size=BATCH)
        return lax.scan(body, (state, params), (xs, ys))[0][1]

    median, spread = _median_spread(_seconds(run, (params, xs, ys)))
    return {"ms_per_step": 1e3 * median / steps, "spread": spread, "layout": layout.name}


def _seconds(fn, args, repeats: int = 5) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn(*args)``, after a first (compiling) one."""
    import jax

    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - tic)
    return times


def _rate(fn, args, flops: float, repeats: int = 7) -> float:
    return flops / statistics.median(_seconds(fn, args, repeats)) / 1e9


def one_matmul() -> dict:
    """GFLOP/s of a 2048² matmul and of OK's propagation shape (``BATCH`` streams), float32."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    from rtrlx.cells import RHN
    from rtrlx.cells._base import num_components
    from rtrlx.learners._kronecker import factor_shapes

    k = jax.random.split(jax.random.key(0), 4)
    a = jax.random.normal(k[0], (2048, 2048))
    square = _rate(jax.jit(lambda a: a @ a), (a,), 2 * 2048**3)
    cell = RHN(5, 128, key=k[1])  # the copy curriculum's input size; rows and S·n matter only
    size = num_components(cell) * cell.hidden_size
    rows = sum(s.rows for s in factor_shapes(cell, cell.kron_factors()))
    traces = jax.random.normal(k[2], (BATCH, 16 * rows, size))
    jac = jax.random.normal(k[3], (BATCH, size, size))
    flops = 2 * BATCH * 16 * rows * size * size

    def in_cache(t, j):  # one stream's traces against every Jacobian: operands stay in cache
        return lax.fori_loop(0, BATCH, lambda i, acc: acc + t @ j[i], jnp.zeros_like(t))

    rates = {
        "one_stream_in_cache": _rate(jax.jit(in_cache), (traces[0], jac), flops),
        "streams": _rate(
            jax.jit(lambda t, j: lax.map(lambda p: p[0] @ p[1], (t, j))), (traces, jac), flops
        ),
        "batched": _rate(jax.jit(lambda t, j: t @ j), (traces, jac), flops),
    }
    del traces, jac
    return {
        "square_2048_gflops": square,
        "ok_propagation_gflops": max(rates.values()),
        "ok_propagation_gflops_by_layout": rates,
        "ok_propagation_flops_per_step": flops,
    } | _rtrl_rates(k[1])


def _rtrl_rates(key) -> dict:
    """GFLOP/s of exact RTRL's trace products, J_h (n x n) @ M (n x P), GRU 64, ``BATCH`` streams.

    With one stream's trace in cache (what the bench's by-stream layout runs: one stream
    through the whole sequence) and with all the streams' traces in turn (what training must
    run when the parameters change every step: 3.4 MB of trace per stream, 54 MB at 16).
    """
    import equinox as eqx
    import jax
    from jax import lax

    from rtrlx.cells import GRU
    from rtrlx.tasks import make as make_task

    cell = GRU(make_task(TASK)[0].input_size, 64, key=key)
    n = cell.hidden_size
    size = sum(a.size for a in jax.tree.leaves(eqx.filter(cell, eqx.is_inexact_array)))
    k = jax.random.split(key)
    traces = jax.random.normal(k[0], (BATCH, n, size))
    jac = jax.random.normal(k[1], (BATCH, n, n)) / n**0.5  # products stay finite
    rounds = 4  # steps of every stream in turn, updated in place (one copy of the input)
    per_step = 2 * BATCH * n * n * size
    flops = per_step * rounds

    def in_cache(t, j):
        return lax.fori_loop(0, BATCH * rounds, lambda i, acc: j[i % BATCH] @ acc, t)

    def in_turn(t, j):
        def one(i, t):
            s = i % BATCH
            return t.at[s].set(j[s] @ t[s])

        return lax.fori_loop(0, BATCH * rounds, one, t)

    rates = {
        "one_stream_in_cache": _rate(jax.jit(in_cache), (traces[0], jac), flops),
        "streams": _rate(jax.jit(in_turn), (traces, jac), flops),
    }
    return {
        "rtrl_propagation_gflops_by_layout": rates,
        "rtrl_propagation_flops_per_step": per_step,
    }


def _child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--batch", str(BATCH), "--one", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(rounds: int, learners: list[str]) -> dict:
    """Every round: the matmul rates, then each chosen configuration's train and bench."""
    runs: list[dict] = []
    for r in range(rounds):
        got: dict = {"matmul": _child("matmul"), "configs": []}
        for i, (learner, *_rest) in enumerate(CONFIGS):
            if learner not in learners:
                continue
            entry = {
                "learner": learner,
                "train": _child("train", str(i)),
                "bench": _child("bench", str(i)),
                "online": _child("online", str(i)),
                "optimizer": _child("optimizer", str(i)),
            }
            if learner == "diag_rtrl":
                entry["bench_stream"] = _child("stream", str(i))
            got["configs"].append(entry)
            print(f"round {r + 1}: {learner} done", file=sys.stderr, flush=True)
        runs.append(got)
    return {"batch": BATCH, "rounds": runs, "summary": summarise(runs)}


def summarise(runs: list[dict]) -> list[dict]:
    """Per configuration: medians and spreads over rounds, and the train/bench ratio."""
    rows = []
    measured = [entry["learner"] for entry in runs[0]["configs"]]
    for learner, cell, hidden, *_rest in CONFIGS:
        if learner not in measured:
            continue
        entries = [run["configs"][measured.index(learner)] for run in runs]
        row = {"learner": learner, "cell": cell, "hidden": hidden}
        for side in ("train", "bench", "bench_stream", "online", "optimizer"):
            if side in entries[0]:
                values = [e[side]["ms_per_step"] for e in entries]
                median, spread = _median_spread(values)
                row[side] = {"ms_per_step": median, "spread": spread}
                row[side]["within_run_spreads"] = [e[side]["spread"] for e in entries]
        row["ratio"] = statistics.median(
            e["bench"]["ms_per_step"] / e["train"]["ms_per_step"] for e in entries
        )
        if "bench_stream" in row:
            row["ratio_stream"] = statistics.median(
                e["bench_stream"]["ms_per_step"] / e["train"]["ms_per_step"] for e in entries
            )
        row["ratio_online"] = statistics.median(
            e["online"]["ms_per_step"] / e["train"]["ms_per_step"] for e in entries
        )
        if "optimizer" in entries[0]:  # what the loop adds beyond the step and the optimizer
            row["loop_ms_per_step"] = statistics.median(
                e["train"]["ms_per_step"]
                - e["online"]["ms_per_step"]
                - e["optimizer"]["ms_per_step"]
                for e in entries
            )
        row["layout"] = entries[-1]["train"]["layout"]["name"]
        row["bench_by_stream"] = entries[-1]["bench"]["by_stream"]
        if learner == "ok:16":
            fractions = [
                run["matmul"]["ok_propagation_flops_per_step"]
                / (e["train"]["ms_per_step"] / 1e3)
                / 1e9
                / run["matmul"]["ok_propagation_gflops"]
                for run, e in zip(runs, entries, strict=True)
            ]
            row["propagation_fraction_of_same_shape_rate"] = statistics.median(fractions)
        if learner == "rtrl":
            for where in ("one_stream_in_cache", "streams"):
                fractions = [
                    run["matmul"]["rtrl_propagation_flops_per_step"]
                    / (e["train"]["ms_per_step"] / 1e3)
                    / 1e9
                    / run["matmul"]["rtrl_propagation_gflops_by_layout"][where]
                    for run, e in zip(runs, entries, strict=True)
                ]
                row[f"trace_products_fraction_{where}"] = statistics.median(fractions)
        rows.append(row)
    return rows


def _ms(row: dict, side: str) -> str:
    return f"{row[side]['ms_per_step']:.3g}" if side in row else "-"


def table(result: dict) -> str:
    """The summary as markdown."""
    rates = [run["matmul"] for run in result["rounds"]]
    lines = [
        "matmul 2048² GFLOP/s: " + ", ".join(f"{m['square_2048_gflops']:.0f}" for m in rates),
        "OK propagation shape GFLOP/s: "
        + ", ".join(f"{m['ok_propagation_gflops']:.0f}" for m in rates),
        f"batch {result.get('batch', 16)}",
        "RTRL trace products GFLOP/s, one stream in cache / all streams in turn: "
        + ", ".join(
            "{one_stream_in_cache:.0f} / {streams:.0f}".format(
                **m["rtrl_propagation_gflops_by_layout"]
            )
            for m in rates
        ),
        "",
        "| learner | cell | train ms/step (spread) | layout | bench ms/step (spread) | "
        "train/bench speed | online step ms (spread) | train/online speed | optimizer ms | "
        "rest of the loop ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["summary"]:
        bench = f"{row['bench']['ms_per_step']:.4g} ({row['bench']['spread']:.0%})"
        ratio = f"{row['ratio']:.2f}"
        if "bench_stream" in row:
            s = row["bench_stream"]
            bench += f"; stream {s['ms_per_step']:.4g} ({s['spread']:.0%})"
            ratio += f"; stream {row['ratio_stream']:.2f}"
        train = row["train"]
        lines.append(
            f"| {row['learner']} | {row['cell']} {row['hidden']} | "
            f"{train['ms_per_step']:.4g} ({train['spread']:.0%}) | {row['layout']} | {bench} | "
            f"{ratio} | {row['online']['ms_per_step']:.4g} ({row['online']['spread']:.0%}) | "
            f"{row['ratio_online']:.2f} | {_ms(row, 'optimizer')} | "
            f"{row.get('loop_ms_per_step', float('nan')):.3g} |"
        )
        if "propagation_fraction_of_same_shape_rate" in row:
            f = row["propagation_fraction_of_same_shape_rate"]
            lines.append(f"|  | OK propagation in training: {f:.0%} of the same-shape rate |||||")
        if "trace_products_fraction_streams" in row:
            a = row["trace_products_fraction_one_stream_in_cache"]
            b = row["trace_products_fraction_streams"]
            lines.append(
                f"|  | RTRL trace products in training: {a:.0%} of the rate with one stream's "
                f"trace in cache, {b:.0%} of the rate with all streams' in turn |||||"
            )
    return "\n".join(lines)


def main() -> None:
    """Command line: ``--rounds``, ``--json`` and ``--batch``, or ``--one`` for a child process."""
    global BATCH
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--learners",
        default=None,
        help="comma-separated learners of CONFIGS to measure (default: all of them)",
    )
    parser.add_argument(
        "--batch", type=int, default=BATCH, help=f"streams per step (default {BATCH})"
    )
    parser.add_argument("--one", nargs="+", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.batch < 1:
        parser.error(f"--batch must be at least 1, got {args.batch}")
    BATCH = args.batch
    if args.one:
        what, *rest = args.one
        index = int(rest[0]) if rest else 0
        got = {
            "train": lambda: one_train(index),
            "bench": lambda: one_bench(index, stream=False),
            "stream": lambda: one_bench(index, stream=True),
            "online": lambda: one_online(index),
            "optimizer": lambda: one_optimizer(index),
            "matmul": one_matmul,
        }[what]()
        print(json.dumps(got))
        return
    known = [c[0] for c in CONFIGS]
    chosen = known if args.learners is None else args.learners.split(",")
    if unknown := [name for name in chosen if name not in known]:
        parser.error(f"--learners: {', '.join(unknown)} not in CONFIGS: {', '.join(known)}")
    result = measure(args.rounds, chosen)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    print(table(result))


if __name__ == "__main__":
    main()
