"""Time the official OK code (Benzing, Gauy et al. 2019) on its copy-task configuration.

The reference is https://github.com/marcelomatheusgauy/optimal_kronecker_approximation
(checked at commit 76803fc). It is never copied into rtrlx: pass the path of a checkout.
Run it in its own environment, never rtrlx's (the official code is TF 1 graph code; TF
2.21's ``tf.compat.v1`` runs it; it also imports scipy, unused):

    git clone https://github.com/marcelomatheusgauy/optimal_kronecker_approximation /tmp/okref
    python3.11 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu==2.21.0 numpy scipy
    /tmp/tfenv/bin/python benchmarks/ok_reference.py --ref /tmp/okref --json ok_ref.json

What runs is the official file ``OK/OK_rank_r_unbiased.py`` itself, read and executed at
run time (the checkout is never edited):

  - everything before its ``with tf.Session(...)`` block, unchanged: the graph of one
    training step with the settings as committed: ``experiment = "cp"`` (the binary copy
    task, vocabulary 4), RHN of ``n = 128`` units, ``rank_approximation = 16``, batch
    ``b_size = 16``, Adam at ``cur_lr = 10**-3.5`` on ``avg_steps = 1`` step's gradient
    (an update after every step), the recurrent weight's gradient clipped to norm 1, and
    the copy curriculum (the length ``T_`` grows by one when the running loss, smoothed at
    0.001 per step, falls under 0.15 bits; each string has length ``max(1, T_ - U{0..4})``);
    the OK update with its Gram-Schmidt loops and the SVD through ``tf.py_func``;
  - the session that block opens (``tf.Session(config=tf.ConfigProto(gpu_options=...))``)
    and the statements before its loop (variable initialisation, counters);
  - the body of its ``while steps < 2000000`` loop, executed once per timed step. A step
    is one time step of all 16 streams: ``cp_data()`` (the next character of each
    stream), ``sess.run(clear__)`` (zero the state and the OK factors of the streams that
    start a new string), one ``sess.run`` of the forward step, the OK update and the
    gradient (with the same fetches as the official loop), ``sess.run(train)`` (Adam)
    and ``sess.run([clear])``, and the running statistics and the print every 1000 steps
    (sent to stderr here).

The only change, made to the parsed source, is TF 2's migration for graph code:
``import tensorflow as tf`` becomes ``import tensorflow.compat.v1 as tf`` and
``tf.disable_v2_behavior()`` is called first (placeholders, ``tf.Session`` and
``tf.get_variable`` need graph mode). Nothing else is patched: every other name the file
uses (``tf.matrix_diag``, ``tf.py_func``, ``tf.random_uniform``, ``tf.train.AdamOptimizer``,
...) exists in ``tf.compat.v1``; ``tf.contrib`` appears only in a branch the file never
takes (``if 0 == 1``).

The JSON's ``config`` holds the settings as the executed script left them; the run stops
if they, or a source line the other descriptions rest on, differ from what is described
here (a different version of the official file).

Timing: ``--warmup`` steps first (graph optimisation, first allocations), then ``--blocks``
blocks of ``--steps`` steps each; the result is the median of the blocks' milliseconds per
step and their spread ``(max - min) / median``. TensorFlow uses its default thread pools,
as the official code does.
"""

import argparse
import ast
import contextlib
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import types

SCRIPT = os.path.join("OK", "OK_rank_r_unbiased.py")
#: The official settings this benchmark is about: (name in the script, expected value).
EXPECTED = {
    "experiment": "cp",
    "n": 128,
    "rank_approximation": 16,
    "b_size": 16,
    "cur_lr": 10**-3.5,
    "avg_steps": 1,
    "vocab": 4,
}
#: What the timed step does beyond EXPECTED: (description, the source line it rests on).
DESCRIBED = {
    "optimizer": (
        "tf.train.AdamOptimizer(learning_rate=cur_lr), TF 1 defaults (0.9, 0.999, 1e-8)",
        "optimizer = tf.train.AdamOptimizer(learning_rate=lr)",
    ),
    "update": (
        "apply_gradients after every step (steps % avg_steps == avg_steps - 1)",
        "if steps % avg_steps == avg_steps-1:",
    ),
    "gradient_clip": (
        "the recurrent weight's gradient clipped to norm 1; the readout's not clipped",
        "loss2W_avg_ = tf.clip_by_norm(loss2W_avg / avg_steps, 1.)",
    ),
    "curriculum": (
        "T_ += 1 when avg_log_loss (bits, smoothing 0.001) < 0.15; "
        "string length max(1, T_ - randint(5))",
        "if avg_log_loss < 0.15:",
    ),
    "truncation": (
        "none: fully online; a stream's state and OK factors are zeroed when its next "
        "string starts (clear__)",
        "clear__ = [G1.assign(G1 * resets__), G2.assign(G2 * resets__)",
    ),
    "svd": (
        "numpy's SVD of the (rank+1) x (rank+1) core through tf.py_func",
        "tf.py_func(np.linalg.svd, [matrix_ort_basis]",
    ),
    "weight": (
        "W is (n + vocab + 1) x 2n on [one-hot x, h, 1]; readout W_out (n + 1) x vocab",
        "W = tf.get_variable('W_hx', shape=(n + vocab + 1, 2 * n)",
    ),
}
PATCHES = (
    "import tensorflow as tf -> import tensorflow.compat.v1 as tf",
    "tf.compat.v1.disable_v2_behavior() before the script runs",
)


class _CompatV1(ast.NodeTransformer):
    """Rewrites ``import tensorflow as tf`` to ``import tensorflow.compat.v1 as tf``."""

    def __init__(self):
        self.done = 0

    def visit_Import(self, node: ast.Import) -> ast.Import:
        """The import with ``tensorflow`` bound as ``tf`` replaced by its compat.v1."""
        for alias in node.names:
            if alias.name == "tensorflow" and alias.asname == "tf":
                alias.name = "tensorflow.compat.v1"
                self.done += 1
        return node


def parse(path: str) -> tuple[str, ast.Module, ast.With]:
    """The script's statements before its session, and the session's ``with`` block.

    Args:
        path: the official script.

    Returns:
        ``(source, setup, session)``: the script's text; ``setup`` builds the graph;
        ``session`` opens the session and holds the training loop.
    """
    with open(path) as fh:
        source = fh.read()
    tree = ast.parse(source, filename=path)
    patch = _CompatV1()
    tree = patch.visit(tree)
    if patch.done != 1:
        raise RuntimeError(f"{path}: expected one 'import tensorflow as tf', found {patch.done}")
    for i, node in enumerate(tree.body):
        if isinstance(node, ast.With) and "Session" in ast.unparse(node.items[0].context_expr):
            return source, ast.Module(body=tree.body[:i], type_ignores=[]), node
    raise RuntimeError(f"{path}: no 'with tf.Session(...)' block found")


def split_loop(session: ast.With) -> tuple[list[ast.stmt], ast.While]:
    """The statements of the session block before its training loop, and the loop."""
    for i, node in enumerate(session.body):
        if isinstance(node, ast.While):
            return session.body[:i], node
    raise RuntimeError("no training loop (while ...) in the session block")


def compile_statements(statements: list[ast.stmt], path: str) -> types.CodeType:
    """``statements`` as one code object, with their original line numbers."""
    return compile(ast.Module(body=statements, type_ignores=[]), path, "exec")


def read_config(ns: dict, source: str, loop: ast.While) -> dict:
    """The official settings as the executed script left them, checked against the timed ones.

    Args:
        ns: the namespace the script's graph was built in.
        source: the script's text (each description's source line must be in it).
        loop: the script's training loop.

    Raises:
        RuntimeError: a setting, or a line a description rests on, differs.
    """
    config = {name: ns[name] for name in EXPECTED}
    wrong = {k: v for k, v in config.items() if v != EXPECTED[k]}
    wrong |= {k: line for k, (_, line) in DESCRIBED.items() if line not in source}
    if wrong:
        raise RuntimeError(f"the official script differs from the one described: {wrong}")
    config.update({k: text for k, (text, _) in DESCRIBED.items()})
    config["official_loop"] = ast.unparse(loop.test)
    return config


def time_blocks(step, warmup: int, blocks: int, steps: int) -> list[float]:
    """Milliseconds per step of each of ``blocks`` blocks of ``steps`` calls to ``step``."""
    for _ in range(warmup):
        step()
    out = []
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        out.append(1e3 * (time.perf_counter() - start) / steps)
    return out


def checkout_commit(ref: str) -> str | None:
    """The checkout's git commit, if ``ref`` is the top of a git work tree."""

    def git(*args: str) -> str | None:
        done = subprocess.run(
            ["git", "-C", ref, *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or os.path.realpath(top) != os.path.realpath(ref):
        return None
    return git("rev-parse", "HEAD")


def script_sha256(path: str) -> str:
    """SHA-256 of the official script: which version ran, with or without git."""
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def run(ref: str, warmup: int, blocks: int, steps: int) -> dict:
    """Build the official graph, run its loop body, and return the timing record."""
    import tensorflow as tf

    tf.compat.v1.disable_v2_behavior()
    path = os.path.join(ref, SCRIPT)
    source, setup, session = parse(path)
    before, loop = split_loop(session)
    ns: dict = {"__name__": "ok_official", "__file__": path}
    exec(compile_statements(setup.body, path), ns)  # the official script's graph
    config = read_config(ns, source, loop)
    body = compile_statements(loop.body, path)
    opened = ast.Expression(session.items[0].context_expr)
    with eval(compile(opened, path, "eval"), ns) as sess:  # the official tf.Session(...)
        ns[session.items[0].optional_vars.id] = sess
        exec(compile_statements(before, path), ns)
        per_block = time_blocks(lambda: exec(body, ns), warmup, blocks, steps)
    median = statistics.median(per_block)
    return {
        "ms_per_step": median,
        "spread": (max(per_block) - min(per_block)) / median,
        "steps": steps,
        "blocks": blocks,
        "warmup": warmup,
        "block_ms_per_step": per_block,
        "tf_version": tf.__version__,
        "python": platform.python_version(),
        "cpus": len(os.sched_getaffinity(0)),
        "config": config,
        "reference": {
            "path": os.path.abspath(ref),
            "script": SCRIPT,
            "commit": checkout_commit(ref),
            "script_sha256": script_sha256(path),
        },
        "patches": list(PATCHES),
        "after": {  # the official loop's own state, to see that it trained sanely
            "steps_run": ns["steps"],
            "T_": int(ns["T_"]),
            "avg_log_loss_bits": float(ns["avg_log_loss"]),
            "loss_nats": float(ns["cur_loss"]),
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: time the official OK step and print (and write) the JSON record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", required=True, help="checkout of optimal_kronecker_approximation")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed block (20)")
    parser.add_argument("--blocks", type=int, default=5, help="timed blocks (5)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (10)")
    parser.add_argument("--json", default=None, help="write the record here")
    args = parser.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):  # the official loop prints every 1000 steps
        record = run(args.ref, args.warmup, args.blocks, args.steps)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(record, fh, indent=2)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
