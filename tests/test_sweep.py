"""rtrlx sweep: the spec, one trial as a real run, the table, and sweeps on a real Ray.

The Ray tests start a head on the loopback address in a fixture and connect the sweep to it
by address, and also run the local default (a new Ray instance with no address); they are
marked slow (each starts Ray and compiles its trials in fresh processes).
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from rtrlx.cli import main
from rtrlx.sweep import SpecError, SweepSpec, from_dict, load, plan, run_trial, table, write
from rtrlx.sweep.spec import trial_argv
from rtrlx.sweep.trial import TrialError, final_value, metric_value

#: A training run of a few seconds.
TINY = {
    "task": "copy-curriculum",
    "cell": "rhn",
    "hidden": 4,
    "steps": 200,
    "chunk": 100,
    "batch": 2,
}
#: The command line that runs a trial's command.
ENTRY = "rtrlx.cli:main"
#: Flags that make a run diverge at its first chunk.
DIVERGE = {"optimizer": "sgd", "lr": 1e300}


# ----------------------------------------------------------------------------- the spec


def test_points_cross_the_grid_with_seeds_fastest_and_share_random_draws():
    spec = SweepSpec(
        "train",
        {},
        {"learner": ["rtrl", "uoro"], "seed": [0, 1, 2]},
        {"lr": {"loguniform": [1e-4, 1e-2]}},
        samples=2,
    )
    points = spec.points()
    assert len(points) == 2 * 2 * 3
    assert [p["seed"] for p in points[:3]] == [0, 1, 2]
    assert [p["learner"] for p in points] == ["rtrl"] * 6 + ["uoro"] * 6
    lrs = [p["lr"] for p in points]
    assert len(set(lrs)) == 4  # one draw per (learner, sample), shared by its three seeds
    assert all(lrs[i] == lrs[i - i % 3] for i in range(len(lrs)))
    assert all(1e-4 <= lr <= 1e-2 for lr in lrs)
    assert spec.points() == points  # drawn from sample_seed: a resumed sweep has the same
    other = SweepSpec("train", {}, spec.grid, spec.random, samples=2, sample_seed=1)
    assert [p["lr"] for p in other.points()] != lrs


def test_the_other_distributions_draw_in_range():
    spec = SweepSpec(
        "train",
        random={
            "hidden": {"randint": [4, 9]},
            "cell": {"choice": ["gru", "rhn"]},
            "lr": {"uniform": [0.1, 0.2]},
        },
        samples=50,
    )
    points = spec.points()
    assert {p["hidden"] for p in points} <= set(range(4, 9))
    assert {p["cell"] for p in points} == {"gru", "rhn"}
    assert all(0.1 <= p["lr"] <= 0.2 for p in points)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"command": "bench"}, "cannot be swept"),
        ({"command": "train", "grid": {"out": ["a"]}}, "sets --out"),
        ({"command": "train", "args": {"lr": 1}, "grid": {"lr": [1, 2]}}, "two places"),
        ({"command": "train", "grid": {"lr": []}}, "non-empty list"),
        ({"command": "train", "random": {"lr": {"normal": [0, 1]}}}, "unknown distribution"),
        ({"command": "train", "random": {"lr": {"loguniform": [0, 1]}}}, "low > 0"),
        ({"command": "train", "random": {"lr": {"uniform": [2, 1]}}}, "low < high"),
        ({"command": "train", "grid": {"seed.x": [1]}}, "dotted name"),
        ({"command": "train", "mode": "up"}, "'max' or 'min'"),
        ({"command": "train", "samples": 0}, "positive integer"),
        ({"command": "train", "asha": {"grace": 10}}, "asha needs max"),
        ({"command": "train", "args": {"steps": 100}, "asha": {"grace": 100}}, "below max"),
        ({"command": "train", "axes": {}}, "unknown key"),
        ({"grid": {}}, "names no command"),
    ],
)
def test_a_bad_spec_is_refused_by_name(kwargs, words):
    with pytest.raises(SpecError, match=words):
        from_dict(kwargs)


def test_distinct_task_parameters_may_be_fixed_and_swept_but_one_not_twice():
    spec = SweepSpec("train", {"task-param.max_length": 64}, {"task_param.start": [1, 2]})
    assert "max_length=64" in trial_argv(spec, spec.points()[0], "o")
    with pytest.raises(SpecError, match=r"task-param\.start: set in two places"):
        SweepSpec("train", {"task-param.start": 1}, {"task_param.start": [1, 2]})


def test_tasks_with_different_metrics_need_a_named_metric():
    spec = SweepSpec("train", {}, {"task": ["adding", "copy-curriculum"]})
    with pytest.raises(SpecError, match=r"different headline metrics \(T_ \(max\), mse \(min\)"):
        plan(spec)
    named = SweepSpec("train", {}, {"task": ["adding", "copy"]}, metric="loss", mode="min")
    assert plan(named).metric == "loss"
    assert plan(SweepSpec("train", {}, {"task": ["copy-ok", "copy-curriculum"]})).metric == "T_"


def test_an_rl_trial_runs_one_seed_unless_told():
    assert trial_argv(SweepSpec("rl"), {"seed": 2}, "o")[-4:] == ["--seeds", "1", "--out", "o"]
    assert "1" not in trial_argv(SweepSpec("rl", {"seeds": 3}), {"seed": 2}, "o")[-4:-2]


def test_trial_argv_writes_each_kind_of_value_as_its_flag():
    spec = SweepSpec(
        "train", {"task-param.max_length": 8, "update_every": 2, "flag": True, "off": False}
    )
    argv = trial_argv(spec, {"lr": 0.001, "seed": 3}, "runs/t000")
    assert argv == [
        "train",
        "--task-param",
        "max_length=8",
        "--update-every",
        "2",
        "--flag",
        "--lr",
        "0.001",
        "--seed",
        "3",
        "--out",
        "runs/t000",
    ]


def test_spec_files_in_toml_and_yaml_read_the_same(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(
        'command = "train"\nsamples = 2\n[args]\nsteps = 100\n[grid]\n'
        'learner = ["rtrl", "uoro"]\n[random]\nlr = {loguniform = [1e-4, 1e-2]}\n'
    )
    yaml = tmp_path / "s.yaml"
    yaml.write_text(  # YAML 1.1 reads 1e-2 as text; the spec reads it as the number
        "command: train\nsamples: 2\nargs: {steps: 100}\ngrid: {learner: [rtrl, uoro]}\n"
        "random: {lr: {loguniform: [1.0e-4, 1e-2]}}\n"
    )
    assert load(str(toml)) == load(str(yaml))
    bad = tmp_path / "bad.toml"
    bad.write_text("command = \n")
    with pytest.raises(SpecError, match="not a valid spec file"):
        load(str(bad))
    with pytest.raises(SpecError, match="cannot read"):
        load(str(tmp_path / "missing.toml"))


def test_the_example_spec_is_the_sweep_the_readme_describes():
    spec = load(os.path.join(os.path.dirname(__file__), "..", "examples", "sweep-copy-lr.toml"))
    assert len(spec.points()) == 27 and plan(spec).metric == "T_"


def test_the_metric_is_the_command_s_headline_unless_named():
    assert plan(SweepSpec("train", {"task": "adding"})).metric == "mse"
    assert plan(SweepSpec("train", {"task": "adding"})).mode == "min"
    assert (plan(SweepSpec("train")).metric, plan(SweepSpec("train")).mode) == ("T_", "max")
    assert plan(SweepSpec("train", {"recipe": "ok-copy"})).metric == "T_"
    assert plan(SweepSpec("rl")).metric == "return"
    assert plan(SweepSpec("lm")).mode == "min"
    assert plan(SweepSpec("train", metric="loss", mode="min")).metric == "loss"


# ----------------------------------------------------------------------------- the CLI's checks


def test_flags_build_the_spec_and_add_to_a_file(tmp_path, capsys):
    from rtrlx._cli_sweep import build_spec
    from rtrlx.cli import build_parser

    path = tmp_path / "s.toml"
    path.write_text('command = "train"\n[args]\nsteps = 100\n[grid]\nlearner = ["rtrl"]\n')
    args = build_parser().parse_args(
        [
            "sweep",
            str(path),
            "--set",
            "steps=300",
            "--grid",
            "lr=1e-3,3e-3",
            "--seeds",
            "2",
            "--random",
            "hidden=randint:4:8",
            "--samples",
            "3",
            "--asha",
            "100:2",
        ]
    )
    spec = build_spec(args)
    assert spec.args == {"steps": 300}
    over = build_parser().parse_args(["sweep", str(path), "--grid", "steps=100,200"])
    assert build_spec(over).args == {} and build_spec(over).grid["steps"] == [100, 200]
    assert spec.grid == {"learner": ["rtrl"], "lr": [1e-3, 3e-3], "seed": [0, 1]}
    assert spec.random == {"hidden": {"randint": [4, 8]}}
    assert spec.asha == {"grace": 100, "reduction": 2}
    assert len(spec.points()) == 2 * 3 * 2


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--command", "train", "--grid", "learner=rtrl,nope"], "unknown learner 'nope'"),
        (["--command", "train", "--set", "hiden=3"], "not valid for rtrlx train"),
        (["--command", "rl", "--set", "core=lstm"], "unknown core 'lstm'"),
        (["--command", "train", "--grid", "lr"], "NAME=VALUE"),
        (["--command", "train", "--random", "lr=normal:0:1"], "unknown distribution"),
        (["--command", "train", "--set", "steps=100", "--asha", "x"], "grace = 'x' must be"),
        (["--command", "train", "--cpus-per-trial", "64"], "no trial could start"),
        ([], "give a spec file"),
    ],
)
def test_a_bad_sweep_is_refused_before_ray_starts(tmp_path, capsys, flags, words):
    out = tmp_path / "sweep"
    assert main(["sweep", *flags, "--out", str(out)]) == 2
    assert words in " ".join(capsys.readouterr().err.split())
    assert not os.path.exists(out / "sweep.json") and not os.path.exists(out / "tune")


def test_an_unwritable_out_is_refused_first(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["sweep", "--command", "train", "--out", str(blocker / "sweep")]) == 2
    assert "cannot write there" in capsys.readouterr().err


# ----------------------------------------------------------------------------- one trial


@pytest.mark.slow  # long end-to-end: CI runs it with the slow ones
def test_a_trial_is_the_command_s_run_and_reports_its_records(tmp_path):
    spec = SweepSpec("train", TINY)
    reports = []
    record = run_trial(
        {"learner": "rtrl", "seed": 1},
        str(tmp_path / "t"),
        spec,
        "T_",
        entry=ENTRY,
        report=reports.append,
    )
    with open(tmp_path / "t" / "result.json") as f:
        result = json.load(f)
    assert result["learner"] == "rtrl" and result["seed"] == 1 and result["steps"] == 200
    assert [r["step"] for r in reports] == [100, 200]  # the first chunk, then the result
    assert reports[-1]["final"] and reports[-1]["T_"] == result["value"] == record["value"]
    assert record["status"] == "done"
    # a finished run is read back, not rerun
    mtime = os.path.getmtime(tmp_path / "t" / "metrics.jsonl")
    again = run_trial({"learner": "rtrl", "seed": 1}, str(tmp_path / "t"), spec, "T_", entry=ENTRY)
    assert again["value"] == record["value"]
    assert os.path.getmtime(tmp_path / "t" / "metrics.jsonl") == mtime


@pytest.mark.slow
def test_a_killed_trial_goes_on_from_its_checkpoint(tmp_path):
    run_dir = str(tmp_path / "t")
    spec = SweepSpec("train", TINY)
    argv = trial_argv(spec, {"learner": "uoro"}, run_dir)
    assert main([*argv[:-2], "--steps", "100", "--out", run_dir]) == 0  # "killed" at step 100
    os.remove(os.path.join(run_dir, "result.json"))
    record = run_trial({"learner": "uoro"}, run_dir, spec, "T_", entry=ENTRY)
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        steps = [json.loads(line)["step"] for line in f]
    assert steps == [100, 200] and record["step"] == 200


@pytest.mark.slow  # long end-to-end: CI runs it with the slow ones
def test_a_failed_trial_raises_the_command_s_message_and_records_it(tmp_path):
    spec = SweepSpec("train", {**TINY, **DIVERGE})
    with pytest.raises(TrialError, match="non-finite between steps 0 and 100"):
        run_trial({"learner": "rtrl"}, str(tmp_path / "t"), spec, "T_", entry=ENTRY)
    with open(tmp_path / "t" / "trial.json") as f:
        saved = json.load(f)
    assert saved["status"] == "failed" and "lower --lr" in saved["error"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "command, args, point",
    [
        ("rl", {"steps": 2000, "seeds": 1, "chunks": 4, "hidden": 8}, {"seed": 0}),
        (
            "lm",
            {
                "windows": 6,
                "window": 20,
                "batch": 4,
                "hidden": 16,
                "eval_every": 3,
                "eval_streams": 4,
            },
            {"cell": "lstm"},
        ),
    ],
)
def test_rl_and_lm_trials_report_their_headline_metric(tmp_path, command, args, point):
    spec = SweepSpec(command, args)
    reports = []
    record = run_trial(
        point, str(tmp_path / "t"), spec, plan(spec).metric, entry=ENTRY, report=reports.append
    )
    metric = plan(spec).metric
    assert record["status"] == "done" and record["value"] is not None
    assert len(reports) >= 2 and reports[-1]["final"]
    assert reports[-1][metric] == record["value"] and reports[-1]["step"] == record["step"] > 0


@pytest.mark.slow  # long end-to-end: CI runs it with the slow ones
def test_a_run_without_the_metric_fails_naming_what_it_recorded(tmp_path):
    spec = SweepSpec("train", TINY)
    with pytest.raises(TrialError, match=r"recorded no value of 'T'.*T_.*--metric"):
        run_trial({"learner": "uoro"}, str(tmp_path / "t"), spec, "T", entry=ENTRY)


def test_metric_values_average_seeds_and_skip_what_is_missing():
    assert metric_value({"return": [1.0, None, 3.0]}, "return") == 2.0
    assert metric_value({"T_": float("nan")}, "T_") is None
    assert metric_value({}, "T_") is None
    assert final_value({"metric": "T_", "value": 4.0}, [], "T_") == 4.0
    assert (
        final_value({"records": [{"final_return": 2.0}, {"final_return": 4.0}]}, [], "return")
        == 3.0
    )
    assert final_value({}, [{"loss": 1.0}, {"loss": 0.5}], "loss") == 0.5


# ----------------------------------------------------------------------------- the table


def test_the_table_averages_seeds_counts_failures_and_ranks_best_first(tmp_path):
    trials = [
        {"learner": "a", "seed": 0, "status": "done", "value": 2.0, "error": None},
        {"learner": "a", "seed": 1, "status": "done", "value": 4.0, "error": None},
        {"learner": "b", "seed": 0, "status": "done", "value": 5.0, "error": None},
        {"learner": "b", "seed": 1, "status": "failed", "value": None, "error": "diverged"},
        {"learner": "c", "seed": 0, "status": "stopped", "value": 9.0, "error": None},
    ]
    rows = table(trials, ["learner", "seed"], "max")
    assert [r["learner"] for r in rows] == ["b", "a", "c"]
    assert rows[1]["mean"] == 3.0 and rows[1]["sd"] == pytest.approx(2**0.5)
    assert rows[0]["failed"] == 1 and rows[0]["errors"] == ["diverged"]
    assert rows[2]["mean"] is None and rows[2]["stopped"] == 1  # a stopped trial is no result
    assert [r["learner"] for r in table(trials, ["learner", "seed"], "min")][:2] == ["a", "b"]
    report = {
        "command": "train",
        "metric": "T_",
        "mode": "max",
        "axes": ["learner", "seed"],
        "trials": [{"index": i, **t} for i, t in enumerate(trials)],
        "table": rows,
    }
    paths = write(report, str(tmp_path))
    assert all(os.path.exists(str(p)) for p in paths.values())
    with open(paths["csv"]) as f:
        assert f.readline().strip() == "index,learner,seed,status,value,step,seconds,error"


# ----------------------------------------------------------------------------- on a real Ray


def _ray_bin() -> str:
    return os.path.join(os.path.dirname(sys.executable), "ray")


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head on the loopback address, with token authentication (Ray's default since
    2.5x) and the token in the environment as a user of such a cluster would set it; yields
    its address; stopped at the end."""
    import secrets

    auth = {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    saved = {k: os.environ.get(k) for k in auth}
    os.environ.update(auth)
    port = 26379 + os.getpid() % 1000
    subprocess.run(
        [
            _ray_bin(),
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([_ray_bin(), "stop", "--force"], capture_output=True, timeout=120)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _sweep(*flags, env=None):
    """``rtrlx sweep FLAGS`` in a fresh process, as a user runs it; (exit code, stderr, out)."""
    done = subprocess.run(
        [sys.executable, "-m", "rtrlx.cli", "sweep", *flags],
        capture_output=True,
        text=True,
        timeout=900,
        env={**(env or os.environ), "COLUMNS": "500"},
    )
    return done.returncode, done.stderr, done.stdout


def _flags(args):
    return [f"--set={k}={v}" for k, v in args.items()]


def _results(out):
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f)


@pytest.mark.slow
def test_a_sweep_on_a_cluster_by_address_records_a_failure_and_resumes(ray_head, tmp_path):
    out = str(tmp_path / "sweep")
    flags = [
        *_flags({**TINY, "optimizer": "sgd", "learner": "rtrl"}),
        "--grid",
        "lr=0.01,1e300",
        "--command",
        "train",
        "--address",
        ray_head,
        "--out",
        out,
    ]
    code, err, printed = _sweep(*flags)
    assert code == 0, err
    good, bad = _results(out)["trials"]
    assert good["status"] == "done" and good["step"] == 200 and good["value"] is not None
    assert bad["status"] == "failed" and "non-finite" in bad["error"]
    assert "t001 (lr=1e+300) failed: rtrlx train:" in err and "2/2" in err
    assert "0.01" in printed  # the table
    # resume: Tune's state says both ended; nothing runs again, the results are the same
    mtime = os.path.getmtime(os.path.join(out, "runs", "t000", "metrics.jsonl"))
    code, err, _ = _sweep("--resume", "--address", ray_head, "--out", out)
    assert code == 0, err
    again = _results(out)["trials"]
    assert [t["status"] for t in again] == ["done", "failed"]
    assert again[0]["value"] == good["value"]
    assert os.path.getmtime(os.path.join(out, "runs", "t000", "metrics.jsonl")) == mtime


@pytest.mark.slow
def test_a_resumed_sweep_runs_only_the_trials_that_had_not_finished(ray_head, tmp_path):
    out = str(tmp_path / "sweep")
    flags = [
        *_flags({**TINY, "learner": "uoro"}),
        "--seeds",
        "2",
        "--command",
        "train",
        "--address",
        ray_head,
        "--out",
        out,
    ]
    code, err, _ = _sweep(*flags)
    assert code == 0, err
    assert [t["status"] for t in _results(out)["trials"]] == ["done", "done"]
    # as after a kill before Tune saved its state: the trials' directories alone
    shutil.rmtree(os.path.join(out, "tune"))
    os.remove(os.path.join(out, "runs", "t001", "result.json"))
    os.remove(os.path.join(out, "runs", "t001", "checkpoint.eqx"))
    mtime = os.path.getmtime(os.path.join(out, "runs", "t000", "metrics.jsonl"))
    code, err, _ = _sweep(*flags, "--resume")
    assert code == 0, err
    assert [t["status"] for t in _results(out)["trials"]] == ["done", "done"]
    assert os.path.getmtime(os.path.join(out, "runs", "t000", "metrics.jsonl")) == mtime
    assert os.path.exists(os.path.join(out, "runs", "t001", "result.json"))
    code, err, _ = _sweep(*flags[:-2], "--grid", "lr=0.1", "--out", out, "--resume")
    assert code == 2 and "started with another spec (it differs in grid)" in err


@pytest.mark.slow
def test_asha_stops_a_trial_that_is_behind_at_its_first_rung(ray_head, tmp_path):
    out = str(tmp_path / "sweep")
    # one trial at a time: the good one sets the rung's bar, the frozen one falls below it
    args = {**TINY, "task": "adding", "steps": 400, "learner": "rtrl"}
    flags = [*_flags(args), "--grid", "lr=0.03,1e-12", "--asha", "100:2", "--concurrent", "1"]
    code, err, _ = _sweep(*flags, "--command", "train", "--address", ray_head, "--out", out)
    assert code == 0, err
    report = _results(out)
    good, frozen = report["trials"]
    assert good["status"] == "done" and good["step"] == 400
    assert frozen["status"] == "stopped" and frozen["step"] < 400, frozen
    assert report["table"][0]["lr"] == 0.03 and report["table"][1]["stopped"] == 1


@pytest.mark.slow
def test_the_local_default_needs_no_address_and_refuses_a_second_sweep_in_its_dir(tmp_path):
    out = str(tmp_path / "sweep")
    flags = ["--command", "train", *_flags(TINY), "--grid", "learner=rtrl", "--out", out]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    code, err, printed = _sweep(*flags, env=env)
    assert code == 0, err
    assert "rtrl" in printed and "1 trials" in err
    report = _results(out)
    assert report["trials"][0]["status"] == "done"
    assert report["concurrent"] == len(os.sched_getaffinity(0))  # one trial per core
    with open(os.path.join(out, "runs", "t000", "trial.json")) as f:
        assert "--xla_cpu_multi_thread_eigen=false" in json.load(f)["xla_flags"]
    code, err, _ = _sweep(*flags, env=env)
    assert code == 2 and "already holds a sweep" in err
