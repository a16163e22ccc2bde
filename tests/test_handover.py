"""A run handed to a fresh machine without its learner state (rtrlx.handover)."""

import json
import os

import jax
import numpy as np
import pytest

from rtrlx._tree import is_key, keys_to_data
from rtrlx.driver import RunError, load_checkpoint, locked
from rtrlx.handover import PACKED, export_run, import_run
from rtrlx.train import TrainConfig, build, read_metrics, train

BASE = dict(
    task="copy-curriculum",
    cell="rhn",
    learner="ok:2",
    hidden=16,
    batch=8,
    chunk=20,
    checkpoint_every=20,
)


def _leaves(tree):
    return [np.asarray(a) for a in jax.tree.leaves(keys_to_data(tree))]


def _files(out):
    """A run directory's files, but its lock (which a run or an import leaves behind)."""
    return [n for n in os.listdir(out) if n != ".lock"]


def _same(a, b):
    for x, y in zip(_leaves(a), _leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_handover_keeps_the_run_and_restarts_only_the_learner_state(tmp_path):
    run_dir, kept, again = (str(tmp_path / n) for n in ("run", "kept", "again"))
    train(TrainConfig(steps=60, **BASE), out=run_dir)
    assert export_run(run_dir, kept) == 60
    assert import_run(kept, again) == 60
    with open(os.path.join(again, "result.json")) as fh:
        assert json.load(fh)["steps"] == 60

    run, template = build(TrainConfig(steps=60, **BASE))
    _, before = load_checkpoint(run_dir, template)
    _, after = load_checkpoint(again, template)
    for field in ("params", "opt_state", "task_state", "level", "running", "accum", "key"):
        _same(getattr(before, field), getattr(after, field))
    # Every stream's hidden state and traces are the fresh ones; the PRNG keys run on.
    fresh = run.learner.init(
        run.modules(before.params)[0], key=jax.random.key(0), batch_size=BASE["batch"]
    )
    for old, new, init in zip(
        jax.tree.leaves(before.learner_state),
        jax.tree.leaves(after.learner_state),
        jax.tree.leaves(fresh),
        strict=True,
    ):
        if is_key(old):
            _same(old, new)
        else:
            assert np.any(np.asarray(old) != np.asarray(init))  # the run had state to drop
            np.testing.assert_array_equal(np.asarray(new), np.asarray(init))

    # The traces dominate this checkpoint; without them the hand-over is a fraction of it.
    packed = os.path.getsize(os.path.join(kept, PACKED))
    assert packed < os.path.getsize(os.path.join(run_dir, "checkpoint.eqx")) / 3

    # The run goes on from the hand-over, its wall-clock too; a second hand-over lists both
    # steps, and exporting a run that has not moved since adds none.
    walls = [r["wall_seconds"] for r in read_metrics(run_dir)]
    result = train(TrainConfig(steps=100, **BASE), out=again, resume=True)
    assert result["steps"] == 100
    records = read_metrics(again)
    assert [r["step"] for r in records] == [20, 40, 60, 80, 100]
    assert [r["wall_seconds"] for r in records[:3]] == walls
    assert records[3]["wall_seconds"] > walls[-1]
    for _ in range(2):
        export_run(again, kept)
        with open(os.path.join(kept, "carried.json")) as fh:
            assert json.load(fh) == {"learner_state_restarted_at": [60, 100]}


def test_handover_keeps_only_what_belongs_to_the_checkpoint(tmp_path):
    run_dir, kept, again = (str(tmp_path / n) for n in ("run", "kept", "again"))
    train(TrainConfig(steps=40, **BASE), out=run_dir)
    export_run(run_dir, kept)
    assert os.path.exists(os.path.join(kept, "result.json"))
    # Records written after the checkpoint (a kill before the next one), a torn last line,
    # and a summary of another step are not carried; the earlier hand-over's summary goes.
    with open(os.path.join(run_dir, "metrics.jsonl"), "a") as fh:
        fh.write(json.dumps({"step": 60, "loss": 1.0}) + "\n" + '{"step": 8')
    with open(os.path.join(run_dir, "result.json"), "w") as fh:
        json.dump({"steps": 60}, fh)
    assert export_run(run_dir, kept) == 40
    assert [r["step"] for r in read_metrics(kept)] == [20, 40]
    assert not os.path.exists(os.path.join(kept, "result.json"))
    assert sorted(os.listdir(tmp_path)) == ["kept", "run"]  # no staging left behind
    assert import_run(kept, again) == 40
    assert sorted(_files(again)) == [
        "carried.json",
        "checkpoint.eqx",
        "config.json",
        "metrics.jsonl",
    ]


def test_handover_refuses_what_it_cannot_do(tmp_path):
    run_dir, kept, other = (str(tmp_path / n) for n in ("run", "kept", "other"))
    with pytest.raises(RunError, match="no checkpoint of a training run"):
        export_run(str(tmp_path), kept)
    with pytest.raises(RunError, match="not a hand-over"):
        import_run(str(tmp_path), run_dir)
    train(TrainConfig(steps=20, **BASE), out=run_dir)
    with pytest.raises(RunError, match="into itself"):
        export_run(run_dir, run_dir)
    assert os.path.exists(os.path.join(run_dir, "checkpoint.eqx"))
    export_run(run_dir, kept)
    with pytest.raises(RunError, match="already holds a run"):
        import_run(kept, run_dir)
    # A hand-over whose checkpoint does not fit its config leaves no run behind.
    with open(os.path.join(kept, "config.json")) as fh:
        config = json.load(fh)
    with open(os.path.join(kept, "config.json"), "w") as fh:
        json.dump({**config, "hidden": 8}, fh)
    with pytest.raises(RunError, match="cannot read the checkpoint"):
        import_run(kept, other)
    assert _files(other) == []


def test_export_refuses_to_replace_a_hand_over_that_is_further_along(tmp_path):
    ahead, behind, kept = (str(tmp_path / n) for n in ("ahead", "behind", "kept"))
    train(TrainConfig(steps=40, **BASE), out=ahead)
    train(TrainConfig(steps=20, **BASE), out=behind)
    assert export_run(ahead, kept) == 40
    before = {n: (tmp_path / "kept" / n).read_bytes() for n in os.listdir(kept)}
    with pytest.raises(RunError, match=r"at step 40, further than .* step 20; .* lose 20 steps"):
        export_run(behind, kept)
    assert {n: (tmp_path / "kept" / n).read_bytes() for n in os.listdir(kept)} == before
    assert export_run(behind, kept, backwards=True) == 20  # asked for in so many words
    assert json.loads((tmp_path / "kept" / "carried.json").read_text()) == {
        "learner_state_restarted_at": [20]
    }


def test_export_refuses_a_run_that_is_still_going(tmp_path):
    run_dir, kept = str(tmp_path / "run"), str(tmp_path / "kept")
    train(TrainConfig(steps=20, **BASE), out=run_dir)
    with locked(run_dir), pytest.raises(RunError, match="in use"):  # as a live run holds it
        export_run(run_dir, kept)
    assert not os.path.exists(kept)


def test_an_import_cut_short_leaves_nothing_and_can_be_tried_again(tmp_path, monkeypatch):
    run_dir, kept, again = (str(tmp_path / n) for n in ("run", "kept", "again"))
    train(TrainConfig(steps=20, **BASE), out=run_dir)
    export_run(run_dir, kept)
    replace = os.replace

    def fails_on_the_checkpoint(src, dst):
        if str(dst).endswith("checkpoint.eqx"):
            raise OSError(28, "No space left on device")
        replace(src, dst)

    monkeypatch.setattr(os, "replace", fails_on_the_checkpoint)
    with pytest.raises(RunError, match=r"cannot import .* No space left"):
        import_run(kept, again)
    monkeypatch.undo()
    assert _files(again) == []
    assert import_run(kept, again) == 20
