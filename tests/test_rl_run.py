"""``rtrlx rl`` on the run driver: its settings are checked, and resume is safe."""

import json

import pytest

from rtrlx.cli import main
from rtrlx.driver import RunError
from rtrlx.rl.run import RLConfig, train

SMALL = ["rl", "--env", "RepeatPreviousEasy", "--core", "lru", "--hidden", "4"]
SMALL += ["--steps", "120", "--seeds", "1", "--chunks", "2"]


def flat(text: str) -> str:
    """Rich wraps long lines: compare with the whitespace collapsed."""
    return " ".join(text.split())


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--agent-param", "lam=abc"],
            "agent parameter lam must be a number in [0, 1], got 'abc'",
        ),
        (["--agent-param", "lam=1.5"], "lam must be a number in [0, 1], got 1.5"),
        (["--lr", "-1"], "agent parameter lr must be a number > 0, got -1.0"),
        (["--agent-param", "entropy_coef=nan"], "entropy_coef must be a number >= 0, got nan"),
        (["--agent", "ppo", "--agent-param", "envs=2.5"], "envs must be an integer >= 1"),
    ],
)
def test_rl_refuses_bad_agent_settings_naming_value_and_fix(flags, message, capsys):
    assert main([*SMALL, *flags]) == 2
    err = flat(capsys.readouterr().err)
    assert message in err and "--agent-param" in err


@pytest.mark.parametrize("width", ["0", "-3"])
def test_rl_refuses_a_head_width_below_one(width, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*SMALL, "--head-width", width])
    assert exc.value.code == 2
    assert f"expected a positive integer, got {int(width)}" in capsys.readouterr().err
    with pytest.raises(ValueError, match="head_width must be a positive integer"):
        RLConfig(head_width=int(width)).validate()


@pytest.mark.slow  # minutes of end-to-end work: make test-slow
def test_rl_resume_names_the_setting_that_differs(tmp_path, capsys):
    out = ["--out", str(tmp_path)]
    assert main([*SMALL[:-2], "--chunks", "4", *out]) == 0  # chunks may change on resume
    summary = (tmp_path / "summary.json").read_bytes()
    capsys.readouterr()
    more = [*SMALL[:7], "--steps", "240", "--seeds", "1", *out, "--resume"]
    assert main([*more, "--agent-param", "lam=0.5"]) == 2
    assert "agent_params.lam: saved None, now 0.5" in flat(capsys.readouterr().err)
    assert main([*SMALL, *out, "--resume"]) == 2  # already at step 120
    assert "already at step 120" in flat(capsys.readouterr().err)
    assert (tmp_path / "summary.json").read_bytes() == summary
    assert main([*more, "--lr", "1e-4"]) == 2
    assert "agent_params.lr: saved None, now 0.0001" in flat(capsys.readouterr().err)
    assert main([*more, "--lr", "1e-4", "--allow-change", "lr"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records[0]["steps"] == 240
    steps = [json.loads(line)["step"] for line in (tmp_path / "curves.jsonl").open()]
    assert steps == sorted(set(steps)) and steps[-1] == 240


@pytest.mark.slow  # minutes of end-to-end work: make test-slow
def test_rl_new_run_refuses_a_directory_with_another_run(tmp_path):
    config = RLConfig(core="lru", hidden=4, steps=120, seeds=1, chunks=2)
    train(config, out=str(tmp_path))
    with pytest.raises(RunError, match="already holds a run"):
        train(config, out=str(tmp_path))
    again = train(config, out=str(tmp_path), overwrite=True)
    assert again["records"][0]["steps"] == 120
    assert len((tmp_path / "curves.jsonl").read_text().splitlines()) == 2
