"""The command line: check runs end to end, fails on a broken claim, refuses bad flags."""

import json

import pytest

import rtrlx.check
from rtrlx.cli import main


@pytest.mark.slow  # minutes of end-to-end work: make test-slow
def test_check_json(capsys):
    code = main(
        [
            "check",
            "--json",
            "--cells",
            "gru,lru",
            "--learners",
            "bptt,rtrl,diag_rtrl,snap:1",
            "--hidden",
            "3",
            "--steps",
            "20",
            "--batch",
            "2",
            "--repeats",
            "1",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    by_pair = {(r["learner"], r["cell"]): r for r in out["results"]}
    assert len(by_pair) == 8
    assert by_pair[("rtrl", "gru")]["status"] == "exact"
    assert by_pair[("rtrl", "gru")]["rel_error"] < 1e-12
    assert by_pair[("diag_rtrl", "gru")]["status"] == "unsupported"
    assert by_pair[("diag_rtrl", "lru")]["status"] == "exact"
    assert by_pair[("snap:1", "gru")]["status"] == "approx"
    assert by_pair[("snap:1", "gru")]["rel_error"] > 1e-3


@pytest.mark.slow  # 12 s
def test_check_fails_when_a_claim_is_false(monkeypatch, capsys):
    monkeypatch.setattr(rtrlx.check, "claims_exact", lambda *args: True)
    code = main(
        ["check", "--cells", "gru", "--learners", "snap:1", "--hidden", "3", "--repeats", "1"]
    )
    assert code == 1
    assert "claims exactness" in capsys.readouterr().err


@pytest.mark.slow  # long end-to-end: CI runs it with the slow ones
def test_check_table(capsys):
    assert (
        main(
            [
                "check",
                "--cells",
                "elstm",
                "--learners",
                "diag_rtrl",
                "--hidden",
                "2",
                "--repeats",
                "1",
            ]
        )
        == 0
    )
    assert "diag_rtrl" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "--learners", "nope"], "valid learners: bptt"),
        (["check", "--cells", "nope", "--learners", "rtrl"], "valid cells: elman"),
    ],
)
def test_unknown_names_list_the_choices(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err.replace("\n", "")


def test_bad_flag_value(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["check", "--hidden", "0"])
    assert exc.value.code == 2
    assert "positive integer" in capsys.readouterr().err


@pytest.mark.slow  # minutes of end-to-end work: make test-slow
def test_bench_tiny_config_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--cell",
            "lru",
            "--learners",
            "diag_rtrl",
            "--hidden",
            "4,6",
            "--steps",
            "12",
            "--batch",
            "2",
            "--input",
            "3",
            "--repeats",
            "2",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    got = {(r["learner"], r["hidden"]) for r in data["results"]}
    assert got == {("bptt", 4), ("diag_rtrl", 4), ("bptt", 6), ("diag_rtrl", 6)}
    assert all(r["seconds_per_step"] > 0 and r["repeats"] == 2 for r in data["results"])
    assert "vs bptt" in capsys.readouterr().out
    by_learner = {(r["learner"], r["hidden"]): r["state_floats"] for r in data["results"]}
    # A streaming state grows with n, not T; BPTT keeps every state.
    assert by_learner[("diag_rtrl", 4)] < by_learner[("diag_rtrl", 6)]
    assert by_learner[("bptt", 4)] == 12 * 2 * 4  # T complex states: grows with T
    assert not any(r["by_stream"] for r in data["results"])  # tiny states: batched


@pytest.mark.slow  # minutes of end-to-end work: make test-slow
def test_bench_by_stream_flag_marks_the_learners_it_applies_to(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "--cell", "gru", "--learners", "rtrl,uoro", "--hidden", "3"]
    argv += ["--steps", "6", "--batch", "2", "--input", "2", "--repeats", "1"]
    assert main([*argv, "--by-stream", "yes", "--json", str(out)]) == 0
    ran = {r["learner"]: r["by_stream"] for r in json.loads(out.read_text())["results"]}
    # uoro keeps one key per stream, so its streams run one after another too.
    assert ran == {"bptt": False, "rtrl": True, "uoro": True}
    assert "rtrl (by stream)" in capsys.readouterr().out
    assert main([*argv, "--by-stream", "no", "--json", str(out)]) == 0
    assert not any(r["by_stream"] for r in json.loads(out.read_text())["results"])
    with pytest.raises(SystemExit):
        main([*argv, "--by-stream", "maybe"])


@pytest.mark.slow  # minutes of end-to-end work: make test-slow
def test_bench_suite_runs_end_to_end_and_evaluates_targets(tmp_path, capsys):
    out, plots = tmp_path / "suite.json", tmp_path / "plots"
    argv = ["bench", "--suite", "tiny", "--repeats", "1", "--json", str(out)]
    assert main([*argv, "--plot-dir", str(plots)]) == 0
    report = json.loads(out.read_text())
    (case,) = report["cases"]
    assert {r["learner"] for r in case["results"]} == {"bptt", "rtrl", "snap:1"}
    assert [t["met"] for t in case["targets"]] == [True, True]
    rtrl = next(r for r in case["results"] if r["learner"] == "rtrl")
    assert rtrl["influence_flops_per_step"] > 0 and rtrl["flops_per_step"] > 0
    assert report["matmul_flops_per_second"] > 0
    assert (plots / "memory_vs_T.png").exists()
    assert "targets" in capsys.readouterr().out


@pytest.mark.slow  # minutes of end-to-end work: make test-slow
def test_bench_deep_stack_memory_against_t(tmp_path, capsys):
    """Streaming online_deep's working memory is flat in T and BPTT's grows (XLA's compiled
    plan, nothing timed)."""
    out, png = tmp_path / "bench.json", tmp_path / "memory.png"
    argv = "bench --cell deep-lru --layers 2 --hidden 4 --input 1 --batch 2 --steps 8 "
    argv += "--repeats 1 --learners inference,online_deep/stream "
    argv += f"--memory-steps 100,1000 --json {out} --plot {png}"
    assert main(argv.split()) == 0
    data = json.loads(out.read_text())
    mem = {(r["learner"], r["T"]): r["temp_bytes"] for r in data["memory"]}
    assert mem[("online_deep/stream", 100)] == mem[("online_deep/stream", 1000)]
    assert mem[("bptt", 1000)] > 5 * mem[("bptt", 100)]
    assert png.stat().st_size > 0
    printed = capsys.readouterr().out
    assert "working memory" in printed and "inference" in printed


@pytest.mark.slow  # minutes of end-to-end work: make test-slow
def test_noise_tiny_study_writes_json_and_plot(tmp_path, capsys):
    out, png = tmp_path / "noise.json", tmp_path / "noise.png"
    argv = ["noise", "--cells", "rhn,elman", "--lengths", "6,12", "--hidden", "3"]
    argv += ["--samples", "8", "--learners", "kf_rtrl,ok:1,rflo,tbptt:20,es:10"]
    code = main([*argv, "--json", str(out), "--plot", str(png)])
    assert code == 0
    records = json.loads(out.read_text())["results"]
    assert len(records) == 2 * 2 * 5
    status = {(r["cell"], r["learner"]): r["status"] for r in records}
    assert status[("rhn", "rflo")] == "unsupported" and status[("elman", "rflo")] == "ok"
    ok = [r for r in records if r["status"] == "ok"]
    for r in ok:
        assert r["samples"] == (8 if r["learner"] in ("kf_rtrl", "ok:1", "es:10") else 1)
        assert r["normalised_variance"] >= 0 and -1 <= r["cosine"] <= 1 + 1e-12
        if r["learner"] == "tbptt:20":  # the window covers the sequence: exact
            assert r["normalised_variance"] < 1e-20
    assert png.stat().st_size > 10_000
    assert "normalised variance" in capsys.readouterr().out


def test_noise_refuses_unknown_names(capsys):
    assert main(["noise", "--learners", "ok:x"]) == 2
    assert "integer argument" in capsys.readouterr().err


@pytest.mark.slow  # 23 s
def test_train_and_compare_end_to_end(tmp_path, capsys):
    common = ["--task", "adding", "--cell", "gru", "--hidden", "4", "--steps", "40"]
    common += ["--batch", "2", "--chunk", "20", "--task-param", "length=10"]
    assert main(["train", *common, "--learner", "snap:1", "--out", str(tmp_path / "t")]) == 0
    assert json.loads(capsys.readouterr().out)["metric"] == "mse"
    code = main(
        ["compare", *common, "--learners", "snap:1,uoro", "--seeds", "2", "--out", str(tmp_path)]
    )
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())["results"]
    assert {(r["learner"], r["seed"]) for r in summary} == {
        ("snap:1", 0),
        ("snap:1", 1),
        ("uoro", 0),
        ("uoro", 1),
    }
    assert all(r["metric"] == "mse" and r["value"] is not None for r in summary)
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    assert "mse (mean ± sd)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--task", "nope"], "valid tasks: copy-curriculum"),
        (["train", "--learner", "bptt"], "cannot train online"),
        (["compare", "--learners", "rtrl,nope"], "valid learners: bptt"),
        (["train", "--task-param", "length"], "NAME=VALUE"),
    ],
)
def test_train_and_compare_refuse_bad_flags(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err.replace("\n", "")


@pytest.mark.slow  # long end-to-end: CI runs it with the slow ones
def test_compare_fails_when_every_run_fails(tmp_path, capsys):
    argv = ["compare", "--task", "adding", "--cell", "elman", "--hidden", "3", "--steps", "40"]
    argv += ["--batch", "2", "--chunk", "20", "--task-param", "length=5", "--lr", "1e300"]
    argv += ["--optimizer", "sgd", "--learners", "rtrl,snap:1", "--seeds", "1"]
    assert main([*argv, "--out", str(tmp_path)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "every run failed (2)" in err
    assert "- rtrl seed 0: rtrl on adding: the loss became non-finite" in err
    assert "- snap:1 seed 0: snap:1 on adding" in err
    rows = json.loads((tmp_path / "summary.json").read_text())["results"]
    assert all(r["error"] and r["value"] is None for r in rows)
    assert not (tmp_path / "curves.png").exists()


@pytest.mark.slow  # make test stays under 10 minutes on 2 cores
def test_compare_is_a_library_function_and_reruns_replace_its_runs(tmp_path):
    import rtrlx
    from rtrlx.train import TrainConfig

    base = TrainConfig(
        task="adding", cell="gru", hidden=3, steps=20, batch=2, chunk=10, task_params={"length": 5}
    )
    for _ in range(2):  # the second comparison replaces the first's runs
        report = rtrlx.compare(base, ["snap:1"], seeds=2, out=str(tmp_path))
    (row,) = report["table"]
    assert row["learner"] == "snap:1" and len(row["values"]) == 2 and not row["errors"]
    assert report["curves"] == str(tmp_path / "curves.png")
    metrics = (tmp_path / "snap-1-seed1" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 2


@pytest.mark.slow  # long end-to-end: CI runs it with the slow ones
def test_train_cli_resume_of_a_finished_run_keeps_its_result(tmp_path, capsys):
    argv = ["train", "--task", "adding", "--cell", "gru", "--hidden", "3", "--steps", "20"]
    argv += ["--batch", "2", "--chunk", "10", "--task-param", "length=5", "--out", str(tmp_path)]
    assert main(argv) == 0
    result = (tmp_path / "result.json").read_bytes()
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2
    assert "already at step 20" in " ".join(capsys.readouterr().err.split())
    assert (tmp_path / "result.json").read_bytes() == result
    assert main(argv) == 2  # a new run over it
    assert "--resume, or use another --out" in " ".join(capsys.readouterr().err.split())
    assert main([*argv, "--eval-every", "-1", "--overwrite"]) == 2
    assert "eval_every must be >= 0" in capsys.readouterr().err
