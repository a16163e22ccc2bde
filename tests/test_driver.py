"""The run driver: locked run directories, safe resume, truthful divergence errors."""

import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rtrlx import driver
from rtrlx.driver import Job, RunError, TrainingError, drive, load_checkpoint, locked
from rtrlx.train import TrainConfig, read_metrics, train


@functools.partial(jax.jit, static_argnums=1)
def _add(carry, n):
    """A toy chunk: ``n`` steps each adding a random draw (so the key must run on)."""

    def step(c, _):
        key, sub = jax.random.split(c["key"])
        return {"x": c["x"] + jax.random.uniform(sub, (2,)), "key": key}, None

    return jax.lax.scan(step, carry, None, length=n)[0]


@pytest.fixture(autouse=True)
def _nothing_abandoned():
    """The abandoned-chunk flag is the process's: a test that sets it leaves it clear."""
    yield
    driver._ABANDONED.clear()


def toy_job(chunk=None, blow_up_after=None):
    def run(carry, n):
        carry = _add(carry, n)
        return carry, None

    def finite(carry, output):
        bad = blow_up_after is not None and float(carry["x"][0]) > blow_up_after
        return "the toy state" if bad else None

    return Job(
        carry={"x": jnp.zeros(2), "key": jax.random.key(0)},
        chunk=chunk or run,
        record=lambda carry, output, info: {"x": float(carry["x"][0])},
        result=lambda carry, records, info: {
            "x": float(carry["x"][0]),
            "steps": info.step,
            "records": len(records),
            "interrupted": info.interrupted,
        },
        chunk_steps=5,
        label="toy",
        finite=finite,
        restart_fix="lower the toy rate",
        resume_fix="resume the toy with a lower rate",
    )


CONFIG = {"rate": 1.0, "steps": 20}


def test_a_second_run_in_a_locked_directory_gets_a_clear_error(tmp_path):
    held, release = threading.Event(), threading.Event()

    def other_run():
        with locked(str(tmp_path)):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=other_run)
    thread.start()
    try:
        assert held.wait(30)
        with pytest.raises(RunError, match="another run holds its lock") as exc:
            drive(CONFIG, toy_job, steps=20, out=str(tmp_path))
        assert str(tmp_path) in str(exc.value) and "another --out" in str(exc.value)
        assert not (tmp_path / "metrics.jsonl").exists()  # nothing of the second run
    finally:
        release.set()
        thread.join()
    assert drive(CONFIG, toy_job, steps=20, out=str(tmp_path))["steps"] == 20  # released


def test_resume_of_a_finished_run_changes_nothing(tmp_path):
    drive(CONFIG, toy_job, steps=20, out=str(tmp_path))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    for steps in (20, 10):
        with pytest.raises(RunError, match="already at step 20"):
            drive({**CONFIG, "steps": steps}, toy_job, steps=steps, out=str(tmp_path), resume=True)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before
    assert json.loads((tmp_path / "result.json").read_text())["x"] is not None


def test_resume_and_overwrite_together_are_refused_and_nothing_is_touched(tmp_path):
    drive(CONFIG, toy_job, steps=10, out=str(tmp_path))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(RunError, match=r"--resume goes on .* --overwrite replaces it; give one"):
        drive(CONFIG, toy_job, steps=20, out=str(tmp_path), resume=True, overwrite=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_resume_names_each_setting_that_differs(tmp_path):
    drive(CONFIG, toy_job, steps=10, out=str(tmp_path))
    with pytest.raises(RunError, match=r"rate: saved 1.0, now 2.0\)"):
        drive({"rate": 2.0, "steps": 20}, toy_job, steps=20, out=str(tmp_path), resume=True)
    resumed = drive(
        {"rate": 2.0, "steps": 20},
        toy_job,
        steps=20,
        out=str(tmp_path),
        resume=True,
        allow_changes=("rate",),
    )
    assert resumed["steps"] == 20
    assert json.loads((tmp_path / "config.json").read_text())["rate"] == 2.0


def test_resume_equals_a_run_straight_through_and_keys_run_on(tmp_path):
    whole = drive(CONFIG, toy_job, steps=20, out=str(tmp_path / "a"))
    drive(CONFIG, toy_job, steps=10, out=str(tmp_path / "b"))
    again = drive(CONFIG, toy_job, steps=20, out=str(tmp_path / "b"), resume=True)
    assert again["x"] == whole["x"] and again["records"] == 4
    step, carry = load_checkpoint(str(tmp_path / "b"), toy_job().carry)
    assert step == 20 and jnp.issubdtype(carry["key"].dtype, jax.dtypes.prng_key)


def test_metrics_are_truncated_to_the_checkpoint_on_resume(tmp_path):
    """A kill after the checkpoint at step 10 left records of steps 15 and 20 behind, the
    last one torn."""
    drive(CONFIG, toy_job, steps=10, out=str(tmp_path))
    with open(tmp_path / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"step": 15, "x": -1.0}) + "\n")
        fh.write(json.dumps({"step": 20, "x": -1.0})[:9])
    drive(CONFIG, toy_job, steps=20, out=str(tmp_path), resume=True)
    records = read_metrics(str(tmp_path))
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    assert all(r["x"] > 0 for r in records)
    straight = drive(CONFIG, toy_job, steps=20, out=str(tmp_path / "straight"))
    assert records[-1]["x"] == straight["x"]


def test_sigterm_saves_a_checkpoint_and_returns_as_ctrl_c_does(tmp_path):
    """``kill PID`` stops a run in the background (which ignores SIGINT) with nothing lost."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers belong to the main thread")
    before = signal.getsignal(signal.SIGTERM)
    run = toy_job().chunk
    calls = []

    def terminated(carry, n):
        calls.append(n)
        if len(calls) == 2:  # during the second chunk
            os.kill(os.getpid(), signal.SIGTERM)
        return run(carry, n)

    result = drive(
        CONFIG, lambda: toy_job(chunk=terminated), steps=20, out=str(tmp_path), resume=False
    )
    assert result["interrupted"] and result["steps"] == 5
    assert load_checkpoint(str(tmp_path), toy_job().carry)[0] == 5
    assert signal.getsignal(signal.SIGTERM) == before
    assert drive(CONFIG, toy_job, steps=20, out=str(tmp_path), resume=True)["steps"] == 20


def test_ctrl_c_while_the_first_chunk_compiles_saves_and_returns(tmp_path):
    def interrupted(carry, n):
        raise KeyboardInterrupt

    driver._ABANDONED.clear()
    result = drive(
        CONFIG, lambda: toy_job(chunk=interrupted), steps=20, out=str(tmp_path), resume=False
    )
    assert driver.abandoned_work()  # stopped inside a chunk: the CLI will not wait for it
    assert result["interrupted"] and result["steps"] == 0
    assert load_checkpoint(str(tmp_path), toy_job().carry)[0] == 0
    assert drive(CONFIG, toy_job, steps=20, out=str(tmp_path), resume=True)["steps"] == 20


def _never():
    raise AssertionError("the job was built before the output directory was checked")


def test_output_paths_are_checked_before_anything_is_built(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(RunError, match="is a file, not a directory"):
        drive(CONFIG, _never, steps=20, out=str(a_file))
    with pytest.raises(RunError, match="cannot create the output directory"):
        drive(CONFIG, _never, steps=20, out=str(a_file / "run"))
    with pytest.raises(RunError, match="no checkpoint"):
        drive(CONFIG, _never, steps=20, out=str(tmp_path / "new"), resume=True)


def test_a_new_run_refuses_a_directory_that_holds_another(tmp_path):
    drive(CONFIG, toy_job, steps=10, out=str(tmp_path))
    with pytest.raises(RunError, match=r"already holds a run \(checkpoint at step 10\)") as exc:
        drive({"rate": 3.0, "steps": 20}, _never, steps=20, out=str(tmp_path))
    assert "--resume" in str(exc.value) and "another --out" in str(exc.value)
    fresh = drive(CONFIG, toy_job, steps=5, out=str(tmp_path), overwrite=True)
    assert fresh["records"] == 1
    assert [r["step"] for r in read_metrics(str(tmp_path))] == [5]


def test_divergence_names_only_what_this_run_wrote(tmp_path):
    # A previous run's checkpoint at step 20 was replaced (--overwrite): not named.
    drive(CONFIG, toy_job, steps=20, out=str(tmp_path))
    job = lambda: toy_job(blow_up_after=0.0)  # noqa: E731
    with pytest.raises(TrainingError) as exc:
        drive(CONFIG, job, steps=20, out=str(tmp_path), overwrite=True, checkpoint_every=5)
    text = str(exc.value)
    assert "between steps 0 and 5" in text and "wrote no checkpoint" in text
    assert "must restart: lower the toy rate" in text and "step 20" not in text
    job = lambda: toy_job(blow_up_after=3.0)  # noqa: E731
    with pytest.raises(TrainingError) as exc:
        drive(CONFIG, job, steps=40, out=str(tmp_path), overwrite=True, checkpoint_every=5)
    step = load_checkpoint(str(tmp_path), toy_job().carry)[0]
    assert f"last checkpoint of this run is step {step}" in str(exc.value)
    assert "resume the toy with a lower rate" in str(exc.value)
    with pytest.raises(TrainingError, match="Nothing was saved"):
        drive(CONFIG, lambda: toy_job(blow_up_after=0.0), steps=20)


def _tiny(**change):
    base = dict(
        task="adding",
        cell="elman",
        learner="rtrl",
        hidden=4,
        steps=400,
        batch=2,
        chunk=25,
        optimizer="sgd",
        checkpoint_every=100,
        task_params={"length": 5},
    )
    return TrainConfig(**{**base, **change})


def test_after_divergence_the_suggested_resume_with_a_lower_lr_works(tmp_path):
    """lr 1000 diverges here after step 100's checkpoint; the message's way on runs."""
    with pytest.raises(TrainingError) as exc:
        train(_tiny(lr=1e3), out=str(tmp_path))
    text = str(exc.value)
    step = load_checkpoint(str(tmp_path), _template())[0]
    assert step == 100 and "last checkpoint of this run is step 100" in text
    assert "--resume --allow-change lr --lr 100" in text
    with pytest.raises(RunError, match=r"lr: saved 1000.0, now 1e-06"):
        train(_tiny(lr=1e-6), out=str(tmp_path), resume=True)
    result = train(_tiny(lr=1e-6), out=str(tmp_path), resume=True, allow_changes=("lr",))
    assert result["steps"] == 400 and np.isfinite(result["value"])
    assert json.loads((tmp_path / "config.json").read_text())["lr"] == 1e-6


def _template():
    from rtrlx.train import build

    return build(_tiny())[1]


def test_a_resumed_run_uses_the_new_learning_rate(tmp_path):
    train(_tiny(lr=0.1, steps=50), out=str(tmp_path))
    _, saved = load_checkpoint(str(tmp_path), _template())
    train(_tiny(lr=1e-12), out=str(tmp_path), resume=True, allow_changes=("lr",))
    _, after = load_checkpoint(str(tmp_path), _template())
    for a, b in zip(jax.tree.leaves(saved.params), jax.tree.leaves(after.params), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-8)  # sgd at 1e-12 barely moves them
    with pytest.raises(ValueError, match="allowed: lr"):
        train(_tiny(), out=str(tmp_path), resume=True, allow_changes=("hidden",))


def test_a_checkpoint_of_another_format_is_refused_with_the_fix(tmp_path):
    drive(CONFIG, toy_job, steps=10, out=str(tmp_path))
    with open(tmp_path / "checkpoint.eqx", "wb") as fh:  # e.g. an older rtrlx's layout
        np.save(fh, np.zeros(3))
    with pytest.raises(RunError, match="another rtrlx version or is damaged"):
        drive(CONFIG, toy_job, steps=20, out=str(tmp_path), resume=True)
    with pytest.raises(RunError, match="cannot read the checkpoint"):
        load_checkpoint(str(tmp_path), {"x": jnp.zeros(5), "y": jnp.zeros(())})


@pytest.mark.slow  # 20 s
def test_the_command_exits_at_once_when_killed_mid_chunk(tmp_path):
    """A killed run saves and leaves; it does not wait minutes for the chunk it stopped.

    The one chunk here (exact RTRL on GRU 8, 40M steps) takes minutes. XLA cannot cancel it,
    and a plain interpreter exit waits for it: ``sys.exit(main())`` with this configuration
    outlived its saved result by more than 45 s (measured when ``rtrlx.cli.entry`` was added).
    """
    out = tmp_path / "run"
    argv = ["train", "--learner", "rtrl", "--cell", "gru", "--hidden", "8"]
    argv += ["--steps", "40000000", "--chunk", "40000000", "--out", str(out)]
    code = "import sys; from rtrlx.cli import entry; sys.argv[1:] = " + repr(argv) + "; entry()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(20)  # compiled (a few seconds) and well into the chunk
    proc.send_signal(signal.SIGTERM)
    tic = time.perf_counter()
    stdout, stderr = proc.communicate(timeout=600)
    assert time.perf_counter() - tic < 20, "the process waited for the abandoned chunk"
    assert proc.returncode == 0, stderr
    result = json.loads(stdout)
    assert result["interrupted"] and result["steps"] == 0
    assert json.loads((out / "result.json").read_text())["interrupted"]
    assert (out / "checkpoint.eqx").exists()
