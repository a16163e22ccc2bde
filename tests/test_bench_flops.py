"""The FLOP count of exact RTRL: by hand, and what XLA counts in the compiled step."""

import equinox as eqx
import jax
import pytest

import rtrlx
from rtrlx.bench.flops import influence_flops, matmul_rate, xla_flops


def test_influence_flops_matches_hand_counts():
    # Elman, 3 units, input 2: weight 3 x (3 + 2) and bias 3, P = 18; J_h M is a
    # (3 x 3) @ (3 x 18) matmul, 2 * 3 * 3 * 18 = 324 operations, and adding J_θ 54 more.
    assert influence_flops(rtrlx.cells.Elman(2, 3, key=jax.random.key(0))) == 324 + 54
    # GRU, 3 units, input 2: w_x 9 x 2, w_h 9 x 3, b_x 9, b_h 9, P = 63.
    assert influence_flops(rtrlx.cells.GRU(2, 3, key=jax.random.key(0))) == 2 * 9 * 63 + 3 * 63
    # LRU, 3 complex units (6 real state entries), input 2: ν, θ, γ (3 each), B re/im 3 x 2.
    lru = rtrlx.cells.LRU(2, 3, key=jax.random.key(0))
    assert influence_flops(lru, batch=4) == 4 * (2 * 36 * 21 + 6 * 21)


@pytest.mark.parametrize(("hidden", "bound"), [(32, 1.10), (64, 1.05)])
def test_xla_counts_little_beyond_the_influence_update(hidden, bound):
    """The compiled rtrl step does the O(n^4) update and only lower-order work besides."""
    cell = rtrlx.cells.Elman(8, hidden, key=jax.random.key(0))
    head = eqx.nn.Linear(hidden, 8, key=jax.random.key(1))
    ratio = xla_flops("rtrl", cell, head, batch=2) / influence_flops(cell, batch=2)
    assert 1.0 < ratio < bound, ratio


def test_matmul_rate_is_a_rate():
    assert matmul_rate(size=64, repeats=3) > 1e6  # FLOP/s: any machine does a million


def test_time_per_step_counts_the_influence_update_of_exact_rtrl_only():
    """Whether a learner carries exact RTRL's dense influence matrix is read from its state's
    type, not its name."""
    from rtrlx.bench import time_per_step
    from rtrlx.bench.speed import problem

    kw = dict(hidden=2, steps=3, batch=2, input_size=1, repeats=1)
    rtrl = time_per_step("rtrl", "elman", **kw)
    cell, *_ = problem("elman", hidden=2, steps=3, batch=2, input_size=1)
    assert rtrl.influence_flops_per_step == influence_flops(cell, batch=2)
    assert time_per_step("snap:1", "elman", **kw).influence_flops_per_step is None


def test_other_cpu_sees_a_process_that_competes_for_the_cores():
    import subprocess
    import sys

    from rtrlx.bench.speed import other_cpu

    def busy_child():
        code = "import time\nend = time.time() + 0.6\nwhile time.time() < end: pass"
        subprocess.run([sys.executable, "-c", code], check=True)
        return "done"

    out, load = other_cpu(busy_child)
    assert out == "done"
    if load is not None:  # None where /proc/stat cannot be read
        assert load > 0.5  # the child kept about one core busy for most of the wall time
