"""Bad command-line input gets a clear error before any work, and nothing is lost."""

import io
import json
import os
import re

import jax
import pytest
from rich.console import Console

import rtrlx
import rtrlx.bench
import rtrlx.bench.noise
import rtrlx.check
from rtrlx.cli import _print_error, build_parser, main


def flat(text: str) -> str:
    """Rich wraps long lines: compare with the whitespace collapsed."""
    return " ".join(text.split())


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command starts its computation."""

    def refuse(*args, **kwargs):
        raise AssertionError("the work started before the inputs were checked")

    monkeypatch.setattr(rtrlx.bench, "time_per_step", refuse)
    monkeypatch.setattr(rtrlx.bench.noise, "noise_study", refuse)
    monkeypatch.setattr(rtrlx.check, "run_check", refuse)


def test_task_param_help_example_is_valid_for_the_default_task():
    from rtrlx.train import TrainConfig

    for command in ("train", "compare"):
        helptext = flat(_subparser_help(command))
        name, value = re.search(r"e\.g\. --task-param (\w+)=(\S+)", helptext).groups()
        _, params = rtrlx.tasks.make(TrainConfig().task, **{name: int(value)})
        assert getattr(params, name) == int(value)


def _subparser_help(command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[command].format_help()


def test_train_refuses_a_bad_task_parameter(capsys):
    code = main(["train", "--task", "adding", "--task-param", "length=abc", "--steps", "1"])
    assert code == 2
    err = flat(capsys.readouterr().err)
    assert "task 'adding': parameter length must be an integer >= 2; got 'abc'" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--learners", ""],
        ["check", "--cells", " , "],
        ["noise", "--learners", ""],
        ["noise", "--lengths", ""],
        ["bench", "--learners", ""],
        ["bench", "--hidden", ""],
    ],
)
def test_an_empty_list_is_an_error(argv, capsys, no_work):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = flat(capsys.readouterr().err)
    assert f"argument {argv[1]}" in err and "expected at least one" in err


@pytest.mark.parametrize(
    ("command", "flag"),
    [("bench", "--json"), ("bench", "--plot"), ("noise", "--json"), ("noise", "--plot")],
)
def test_output_paths_are_checked_before_the_work(tmp_path, capsys, no_work, command, flag):
    extra = ["--memory-steps", "10"] if flag == "--plot" and command == "bench" else []
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    # A directory where a file should go, and a path under a regular file.
    for path, why in ((tmp_path, "is a directory"), (blocker / "out", "cannot write there")):
        assert main([command, *extra, flag, str(path)]) == 2
        err = flat(capsys.readouterr().err)
        assert f"rtrlx {command}: {flag} {path}: {why}" in err


def test_bench_suite_output_paths_are_checked_before_the_work(tmp_path, capsys, monkeypatch):
    import rtrlx.bench.suite

    monkeypatch.setattr(rtrlx.bench.suite, "run_suite", pytest.fail)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["bench", "--suite", "tiny", "--plot-dir", str(blocker / "plots")]) == 2
    assert "--plot-dir" in capsys.readouterr().err


def test_bench_plot_needs_memory_steps(tmp_path, capsys, no_work):
    assert main(["bench", "--plot", str(tmp_path / "memory.png")]) == 2
    err = flat(capsys.readouterr().err)
    assert "--plot draws working memory against T, which needs --memory-steps" in err
    assert not (tmp_path / "memory.png").exists()


@pytest.mark.slow  # make test stays under 10 minutes on 2 cores
def test_bench_shows_an_unsupported_pair_and_writes_everything_else(tmp_path, capsys):
    """kf_rtrl has no Kronecker factor on an LRU: a row says so, and the run goes on. The
    output folder is created, and the reason keeps its ``[h; x]`` (escaped from rich)."""
    out, png = tmp_path / "new" / "bench.json", tmp_path / "new" / "memory.png"
    argv = ["bench", "--cell", "lru", "--learners", "kf_rtrl,diag_rtrl", "--hidden", "2"]
    argv += ["--steps", "4", "--batch", "2", "--input", "1", "--repeats", "1"]
    argv += ["--memory-steps", "4,8", "--plot", str(png), "--json", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert re.search(r"kf_rtrl +│ +2 +│ +- +│ +unsupported", captured.out)
    assert "W @ [h; x]" in flat(captured.err)
    data = json.loads(out.read_text())
    assert {r["learner"] for r in data["results"]} == {"bptt", "diag_rtrl"}
    (unsupported,) = data["unsupported"]
    assert unsupported["learner"] == "kf_rtrl" and "[h; x]" in unsupported["message"]
    assert {r["learner"] for r in data["memory"]} == {"bptt", "diag_rtrl"}
    assert png.stat().st_size > 0
    # The cores this process may use, not JAX's device count (kept as "devices").
    assert data["cpus"] == len(os.sched_getaffinity(0))
    assert data["devices"] == jax.device_count()


@pytest.mark.parametrize(
    ("command", "target"),
    [
        ("check", (rtrlx.check, "run_check")),
        ("bench", (rtrlx.bench, "time_per_step")),
        ("noise", (rtrlx.bench.noise, "noise_study")),
    ],
)
def test_ctrl_c_exits_130_without_a_traceback(command, target, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(*target, interrupted)
    assert main([command]) == 130
    err = capsys.readouterr().err
    assert f"rtrlx {command}: interrupted" in err and "Traceback" not in err


def test_error_messages_are_not_read_as_rich_markup():
    buffer = io.StringIO()
    console = Console(file=buffer, width=200)
    _print_error(console, "check", ValueError("weights entering as W @ [h; x] [red]"))
    assert buffer.getvalue().strip() == "rtrlx check: weights entering as W @ [h; x] [red]"


def test_check_reads_exactness_from_the_learner(capsys):
    """tbptt(k) says it is exact when its window holds the sequence (no name parsing)."""
    argv = ["check", "--json", "--cells", "elman", "--learners", "tbptt:25,tbptt:5"]
    assert main([*argv, "--hidden", "2", "--steps", "20", "--batch", "1", "--repeats", "1"]) == 0
    status = {r["learner"]: r["status"] for r in json.loads(capsys.readouterr().out)["results"]}
    assert status == {"tbptt:25": "exact", "tbptt:5": "approx"}


def test_noise_plot_gives_a_learner_one_colour_in_every_panel():
    records = [
        {"cell": cell, "hidden": 2, "T": t, "learner": name, "stochastic": name == "uoro"}
        | {"status": "ok", "normalised_variance": 0.1 * t}
        for cell, names in (("gru", ("uoro", "snap:1")), ("elman", ("rflo", "snap:1", "uoro")))
        for name in names
        for t in (10, 100)
    ]
    fig = rtrlx.bench.noise.noise_figure(records)
    colours: dict = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            colours.setdefault(line.get_label(), set()).add(line.get_color())
    assert set(colours) == {"uoro", "snap:1", "rflo"}
    assert all(len(c) == 1 for c in colours.values()), colours
    assert len({next(iter(c)) for c in colours.values()}) == 3  # and different learners differ
