r"""rtrlx against the research code it claims speed-ups over, measured in the same run.

Every speed ratio rtrlx states against outside code comes from this script: each round runs,
one job at a time and each in a fresh process, the matmul rate of the machine, then each
reference next to rtrlx's same configuration (which of the two goes first alternates from
round to round), so both sides see the same machine at the same time. Each reference runs
in its own environment, never rtrlx's; nothing of theirs is copied into rtrlx:

  - the official OK code (Benzing, Gauy et al. 2019), TF 1 graph code run by TF 2's
    ``tf.compat.v1`` (see ``benchmarks/ok_reference.py`` for what exactly is timed)::

        git clone https://github.com/marcelomatheusgauy/optimal_kronecker_approximation /tmp/okref
        python3.11 -m venv /tmp/tfenv
        /tmp/tfenv/bin/pip install tensorflow-cpu==2.21.0 numpy scipy

  - braintrace's D_RTRL (``benchmarks/braintrace_compare.py``'s ``speed``)::

        python3.11 -m venv /tmp/btenv && /tmp/btenv/bin/pip install braintrace==0.2.6

Then, with rtrlx's environment::

    .venv/bin/python benchmarks/side_by_side.py --okref /tmp/okref \
        --tf-python /tmp/tfenv/bin/python --bt-python /tmp/btenv/bin/python \
        --rounds 3 --json benchmarks/side_by_side.json

The configurations (milliseconds per time step of the whole batch, after compilation):

  - ``ok16-rhn128-train``: the official OK training step (RHN n=128, rank 16, batch 16,
    copy curriculum, Adam every step) against ``rtrlx train --task copy-curriculum --cell
    rhn --hidden 128 --learner ok:16 --batch 16`` (the chunks after the first, which
    compiles);
  - ``ok16-rhn128-grads``: the same official step against ``rtrlx bench --cell rhn
    --hidden 128 --learners ok:16 --batch 16`` (gradients of a random sequence only: no
    task data, no optimizer), the figure the default bench suite's OK target reads;
  - ``snap1-gru128``: braintrace D_RTRL on GRU n=128, input 16, batch 16, T=1000 against
    rtrlx's ``snap:1`` on the same problem (``rtrlx bench --cell gru``);
  - ``diag-lru256`` and ``diag-lru256-stream``: braintrace D_RTRL on LRU d_hidden 256,
    input 16, batch 16, T=10000 against rtrlx's ``diag_rtrl`` and ``diag_rtrl/stream``.

The JSON holds every round's records, and per configuration the median and spread
``(max - min) / median`` over rounds of each side, the ratio reference / rtrlx of each round
and its median, and the matmul rates; a markdown table is printed. ``--quick`` shrinks every
step count: a test of the script (under 2 minutes on 2 cores), not a measurement. A full
round takes a few minutes on 2 cores; nothing else should run on the machine meanwhile.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

MATMUL_CHILD = """
import json, statistics, time
import jax, jax.numpy as jnp
n = 2048
a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
run = jax.jit(jnp.matmul)
jax.block_until_ready(run(a, b))
times = []
for _ in range({repeats}):
    start = time.perf_counter()
    jax.block_until_ready(run(a, b))
    times.append(time.perf_counter() - start)
print(json.dumps({{"gflops": 2 * n**3 / statistics.median(times) / 1e9, "jax": jax.__version__}}))
"""

BRAINTRACE_CHILD = """
import json, sys
sys.path.insert(0, {here!r})
import braintrace, jax
from braintrace_compare import speed
out = speed({kind!r}, {hidden}, 16, 16, {steps})
print(json.dumps(out | {{"braintrace": braintrace.__version__, "jax": jax.__version__}}))
"""


@dataclass(frozen=True)
class Settings:
    """Step counts of every job (the full measurement, or ``--quick``'s test)."""

    matmul_repeats: int = 7
    ok_ref_steps: int = 20  # per timed block of the official step
    ok_ref_blocks: int = 5
    ok_ref_warmup: int = 10
    train_steps: int = 600
    train_chunk: int = 100
    ok_bench_steps: int = 20  # as the default suite's ok-rhn128 case
    gru_steps: int = 1000
    lru_steps: int = 10_000
    bench_repeats: int = 5


QUICK = Settings(
    matmul_repeats=3,
    ok_ref_steps=3,
    ok_ref_blocks=3,
    ok_ref_warmup=2,
    train_steps=40,
    train_chunk=10,
    ok_bench_steps=5,
    gru_steps=100,
    lru_steps=1000,
    bench_repeats=3,
)


def run_json(command: list[str], what: str) -> dict:
    """Run ``command`` in a fresh process; its last stdout line, parsed as JSON.

    Raises:
        RuntimeError: the command failed; the message holds the end of its stderr.
    """
    print(f"  {what}", file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({' '.join(command)}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def rtrlx_command() -> str:
    """The ``rtrlx`` entry point of the environment this script runs in."""
    beside = Path(sys.executable).parent / "rtrlx"
    found = str(beside) if beside.exists() else shutil.which("rtrlx")
    if not found:
        raise RuntimeError("no rtrlx command next to this Python or on PATH")
    return found


def matmul_gflops(repeats: int) -> dict:
    """The 2048 x 2048 float32 matmul rate in JAX, median of ``repeats``, in GFLOP/s."""
    code = MATMUL_CHILD.format(repeats=repeats)
    return run_json([sys.executable, "-c", code], "matmul rate")


def ok_reference(args: argparse.Namespace, s: Settings, tmp: str) -> dict:
    """The official OK training step, timed by ``ok_reference.py`` in its environment."""
    out = os.path.join(tmp, "ok_reference.json")
    command = [args.tf_python, str(HERE / "ok_reference.py"), "--ref", args.okref]
    command += ["--steps", str(s.ok_ref_steps), "--blocks", str(s.ok_ref_blocks)]
    command += ["--warmup", str(s.ok_ref_warmup), "--json", out]
    record = run_json(command, "official OK (TF)")
    return {"ms_per_step": record["ms_per_step"], "spread": record["spread"], "record": record}


def chunk_rates(metrics: Path) -> list[float]:
    """Milliseconds per step of each chunk of a run, the first (it compiles) left out."""
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return [1e3 / r["steps_per_second"] for r in records[1:]]


def rtrlx_train(s: Settings, tmp: str) -> dict:
    """The OK(16) training of rtrlx on the copy curriculum, RHN n=128, batch 16."""
    out = Path(tmp) / "train"
    command = [rtrlx_command(), "train", "--task", "copy-curriculum", "--cell", "rhn"]
    command += ["--hidden", "128", "--learner", "ok:16", "--batch", "16"]
    command += ["--steps", str(s.train_steps), "--chunk", str(s.train_chunk)]
    command += ["--checkpoint-every", "0", "--out", str(out)]
    print("  rtrlx train ok:16", file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"rtrlx train failed:\n{done.stderr[-3000:]}")
    per_chunk = chunk_rates(out / "metrics.jsonl")
    median = statistics.median(per_chunk)
    result = json.loads((out / "result.json").read_text())
    return {
        "ms_per_step": median,
        "spread": (max(per_chunk) - min(per_chunk)) / median,
        "chunk_ms_per_step": per_chunk,
        "whole_run_steps_per_second": result["steps_per_second"],  # compiling included
        "T_": result["metrics"].get("T_"),
    }


def rtrlx_bench(cell: str, hidden: int, learner: str, steps: int, s: Settings, tmp: str) -> dict:
    """``rtrlx bench`` of one learner (and BPTT) on ``cell``: input 16, batch 16."""
    out = os.path.join(tmp, "bench.json")
    command = [rtrlx_command(), "bench", "--cell", cell, "--hidden", str(hidden)]
    command += ["--learners", learner, "--batch", "16", "--input", "16"]
    command += ["--steps", str(steps), "--repeats", str(s.bench_repeats), "--json", out]
    print(f"  rtrlx bench {learner} on {cell}", file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"rtrlx bench failed:\n{done.stderr[-3000:]}")
    with open(out) as fh:
        results = {r["learner"]: r for r in json.load(fh)["results"]}
    mine = results[learner]
    return {
        "ms_per_step": 1e3 * mine["seconds_per_step"],
        "spread": mine["spread"],
        "by_stream": mine["by_stream"],
        "bptt_ms_per_step": 1e3 * results["bptt"]["seconds_per_step"],
    }


def braintrace_drtrl(args: argparse.Namespace, kind: str, hidden: int, steps: int) -> dict:
    """D_RTRL of braintrace on ``kind``, by ``braintrace_compare.speed`` in its environment."""
    code = BRAINTRACE_CHILD.format(here=str(HERE), kind=kind, hidden=hidden, steps=steps)
    record = run_json([args.bt_python, "-c", code], f"braintrace D_RTRL on {kind}")
    return {"ms_per_step": record["d_rtrl_ms_per_step"], "record": record}


@dataclass(frozen=True)
class Pair:
    """A configuration: a reference's job and rtrlx's, each called with no arguments."""

    name: str
    reference_label: str
    reference: Callable[[], dict]
    rtrlx_label: str
    rtrlx: Callable[[], dict]


def once(job: Callable[[], dict]) -> Callable[[], dict]:
    """``job`` run at most once: later calls return its first result."""
    cache: dict = {}

    def call() -> dict:
        if "value" not in cache:
            cache["value"] = job()
        return cache["value"]

    return call


def pairs(args: argparse.Namespace, s: Settings, tmp: str) -> list[Pair]:
    """The configurations of one round, with jobs that write under ``tmp``.

    A reference job shared by two configurations (the official OK step; braintrace on the
    LRU) runs once per round.
    """
    ok_ref = once(lambda: ok_reference(args, s, tmp))
    gru = once(lambda: braintrace_drtrl(args, "gru", 128, s.gru_steps))
    lru = once(lambda: braintrace_drtrl(args, "lru", 256, s.lru_steps))

    def bench(cell: str, hidden: int, learner: str, steps: int) -> Callable[[], dict]:
        return lambda: rtrlx_bench(cell, hidden, learner, steps, s, tmp)

    ok_label, bt_label = "official OK (TF)", "braintrace D_RTRL"
    return [
        Pair("ok16-rhn128-train", ok_label, ok_ref, "rtrlx train ok:16",
             lambda: rtrlx_train(s, tmp)),
        Pair("ok16-rhn128-grads", ok_label, ok_ref, "rtrlx bench ok:16 (gradients only)",
             bench("rhn", 128, "ok:16", s.ok_bench_steps)),
        Pair("snap1-gru128", bt_label, gru, "rtrlx snap:1",
             bench("gru", 128, "snap:1", s.gru_steps)),
        Pair("diag-lru256", bt_label, lru, "rtrlx diag_rtrl",
             bench("lru", 256, "diag_rtrl", s.lru_steps)),
        Pair("diag-lru256-stream", bt_label, lru, "rtrlx diag_rtrl/stream",
             bench("lru", 256, "diag_rtrl/stream", s.lru_steps)),
    ]  # fmt: skip


def one_round(index: int, args: argparse.Namespace, s: Settings) -> dict:
    """One round: the matmul rate, then each pair, reference first on even rounds."""
    print(f"round {index + 1}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = {"matmul": matmul_gflops(s.matmul_repeats), "pairs": {}}
        for pair in pairs(args, s, tmp):
            if index % 2 == 0:
                ref = pair.reference()
                ours = pair.rtrlx()
            else:
                ours = pair.rtrlx()
                ref = pair.reference()
            out["pairs"][pair.name] = {"reference": ref, "rtrlx": ours}
    return out


def spread(values: list[float]) -> float:
    """``(max - min) / median`` of ``values``."""
    return (max(values) - min(values)) / statistics.median(values)


def side(values: list[float], label: str) -> dict:
    """One side of a configuration over the rounds: its values, median and spread."""
    return {
        "what": label,
        "ms_per_step": values,
        "median": statistics.median(values),
        "spread": spread(values),
    }


def summarise(rounds: list[dict], labels: dict) -> list[dict]:
    """Per configuration: each side's median and spread over rounds, and the ratios."""
    out = []
    for name, (ref_label, mine_label) in labels.items():
        ref = [r["pairs"][name]["reference"]["ms_per_step"] for r in rounds]
        mine = [r["pairs"][name]["rtrlx"]["ms_per_step"] for r in rounds]
        ratios = [a / b for a, b in zip(ref, mine, strict=True)]
        out.append(
            {
                "configuration": name,
                "reference": side(ref, ref_label),
                "rtrlx": side(mine, mine_label),
                "ratio_reference_over_rtrlx": ratios,
                "ratio_median": statistics.median(ratios),
            }
        )
    return out


def table(summary: list[dict], matmul: list[float]) -> str:
    """The summary as a markdown table, with the same-run matmul rates under it.

    Each side's figure is its median over rounds, with the spread over rounds in brackets.
    """
    lines = [
        "| configuration | reference | ms/step | rtrlx | ms/step | reference / rtrlx per round "
        "| median ratio |",
        "|---|---|---:|---|---:|---|---:|",
    ]
    for c in summary:
        ref, mine = c["reference"], c["rtrlx"]
        per_round = ", ".join(f"{r:.3g}" for r in c["ratio_reference_over_rtrlx"])
        lines.append(
            f"| {c['configuration']} | {ref['what']} | {ref['median']:.4g} "
            f"({100 * ref['spread']:.0f}%) | {mine['what']} | {mine['median']:.4g} "
            f"({100 * mine['spread']:.0f}%) | {per_round} | {c['ratio_median']:.3g}x |"
        )
    rates = ", ".join(f"{g:.0f}" for g in matmul)
    lines.append(f"\nmatmul (2048 x 2048 float32, JAX) per round: {rates} GFLOP/s")
    return "\n".join(lines)


def versions(first: dict) -> dict:
    """The versions each side ran with (from the first round), and rtrlx's commit."""
    ref = {name: pair["reference"] for name, pair in first["pairs"].items()}
    ok, bt = ref["ok16-rhn128-train"]["record"], ref["snap1-gru128"]["record"]
    done = subprocess.run(
        ["git", "-C", str(HERE), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "rtrlx_commit": done.stdout.strip() or None,
        "rtrlx_jax": first["matmul"]["jax"],
        "tensorflow": ok["tf_version"],
        "ok_reference": ok["reference"],
        "braintrace": bt["braintrace"],
        "braintrace_jax": bt["jax"],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--okref", required=True, help="checkout of the official OK code")
    parser.add_argument("--tf-python", required=True, help="Python of the TF environment")
    parser.add_argument("--bt-python", required=True, help="Python of braintrace's environment")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--json", default=None, help="write every figure here")
    parser.add_argument("--quick", action="store_true", help="tiny step counts: a test only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the rounds, print the table, and write the JSON."""
    args = parse_args(argv)
    s = QUICK if args.quick else Settings()
    labels = {p.name: (p.reference_label, p.rtrlx_label) for p in pairs(args, s, "")}
    rounds = [one_round(i, args, s) for i in range(args.rounds)]
    matmul = [r["matmul"]["gflops"] for r in rounds]
    summary = summarise(rounds, labels)
    report = {
        "command": [sys.executable, *sys.argv],
        "quick": args.quick,
        "settings": asdict(s),
        "versions": versions(rounds[0]),
        "machine": {"cpus": len(os.sched_getaffinity(0)), "platform": platform.platform()},
        "matmul_gflops": {"rounds": matmul, "median": statistics.median(matmul)},
        "configurations": summary,
        "rounds": rounds,
    }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    print(table(summary, matmul))
    return 0


if __name__ == "__main__":
    sys.exit(main())
