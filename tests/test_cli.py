"""`python -m rnnkit`: help and usage errors as argparse gives them, and a demo that does not
overwrite a model trained longer than the run about to replace it.

Run in a subprocess (the real entry point) with one kernel thread; the demo runs are --quick with
a budget of about half a second, and the refusals happen before any data is read.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from _run_helpers import child_env

COMMANDS = ("selfcheck", "demo", "sample")
# Lines only the self-check prints: a help or usage error must never have run it.
SELFCHECK_MARKS = ("SIMD in use", "forward vs portable")


def cli(args: List[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rnnkit"] + args, cwd=cwd, env=child_env(),
                          capture_output=True, text=True, timeout=timeout)


def assert_no_selfcheck(proc: subprocess.CompletedProcess) -> None:
    for mark in SELFCHECK_MARKS:
        assert mark not in proc.stdout + proc.stderr, f"the self-check ran:\n{proc.stdout}"


# ---------------------------------------------------------------------- help and usage
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_the_commands_and_exits_0(flag, tmp_path):
    proc = cli([flag], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m rnnkit"), proc.stdout
    for command in COMMANDS:
        assert f"\n  {command} " in proc.stdout, proc.stdout
    assert_no_selfcheck(proc)


@pytest.mark.parametrize("args", [["no-such-command"], ["--quick"], ["demoo", "--quick"]])
def test_unknown_command_or_option_is_a_usage_error(args, tmp_path):
    proc = cli(args, tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.startswith("usage: python -m rnnkit"), proc.stderr
    assert repr(args[0]) in proc.stderr                 # names what it did not understand
    assert_no_selfcheck(proc)


@pytest.mark.parametrize("command", ["selfcheck", "check", "demo", "sample"])
def test_command_help_exits_0_without_running_it(command, tmp_path):
    proc = cli([command, "--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m rnnkit "), proc.stdout
    assert_no_selfcheck(proc)
    assert not list(tmp_path.iterdir()), "--help wrote files"


def test_selfcheck_rejects_options_it_does_not_have(tmp_path):
    proc = cli(["selfcheck", "--quick"], tmp_path)
    assert proc.returncode == 2 and "--quick" in proc.stderr, proc.stderr
    assert_no_selfcheck(proc)


def test_version(tmp_path):
    import rnnkit
    proc = cli(["--version"], tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == f"rnnkit {rnnkit.__version__}"


def test_main_returns_the_exit_status(capsys):
    from rnnkit.__main__ import main
    assert main(["--help"]) == 0
    assert "selfcheck" in capsys.readouterr().out
    assert main(["no-such-command"]) == 2
    assert "no-such-command" in capsys.readouterr().err


# ---------------------------------------------------------------------- demo overwrites
QUICK = ["demo", "--quick", "--minutes", "0.01", "--threads", "1", "--length", "20"]


def fake_full_run(path: Path, seconds: float = 600.0) -> bytes:
    """A demo model file whose metadata says a 10-minute full run trained it (the model is a
    tiny one: only the metadata matters to the overwrite check)."""
    from rnnkit.demo import build_model, save_model
    meta = {"vocab": ["a", "b", "c"], "config": {"hidden": 4, "layers": 1, "embed": 2},
            "history": {"step": [1000], "seconds": [seconds], "train_bpc": [2.0],
                        "val_bpc": [2.0], "chars_per_s": [1e4]},
            "quick": False}
    save_model(build_model(3, 4, 1, 2), str(path), meta)
    return path.read_bytes()


def test_quick_run_refuses_to_replace_a_full_run(tmp_path):
    out = tmp_path / "rnnkit-shakespeare.npz"
    before = fake_full_run(out)
    proc = cli(QUICK, tmp_path)                      # the default --out, as a user runs it
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "rnnkit-shakespeare.npz" in proc.stderr and "--force" in proc.stderr, proc.stderr
    assert "10.0 min" in proc.stderr, proc.stderr
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]   # no optimiser, no png


def test_shorter_full_run_refuses_too(tmp_path):
    out = tmp_path / "m.npz"
    before = fake_full_run(out)
    proc = cli(["demo", "--minutes", "2", "--out", str(out)], tmp_path)
    assert proc.returncode == 1 and "2.0 min" in proc.stderr, proc.stderr
    assert out.read_bytes() == before


def test_refuses_to_replace_a_file_that_is_not_a_demo_model(tmp_path):
    out = tmp_path / "notes.npz"
    out.write_text("not a model")
    proc = cli(QUICK + ["--out", str(out)], tmp_path)
    assert proc.returncode == 1 and "not a model saved by the demo" in proc.stderr, proc.stderr
    assert out.read_text() == "not a model"


def test_force_replaces_and_quick_may_replace_quick(tmp_path):
    from rnnkit.demo import read_metadata
    out = tmp_path / "m.npz"
    fake_full_run(out)
    proc = cli(QUICK + ["--out", str(out), "--force"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    meta = read_metadata(str(out))
    assert meta["quick"] is True and len(meta["vocab"]) > 3      # the new, quick model
    # A quick run may replace a quick run's model without --force.
    proc = cli(QUICK + ["--out", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_resume_may_write_back_to_the_file_it_continues(tmp_path):
    from rnnkit.demo import load_model, read_metadata, save_model
    out = tmp_path / "m.npz"
    assert cli(QUICK + ["--out", str(out)], tmp_path).returncode == 0
    # Turn it into a "full run" of 10 minutes: same weights and vocabulary.
    model, meta = load_model(str(out))
    steps = meta["history"]["step"][-1]
    meta["quick"] = False
    meta["history"]["seconds"][-1] = 600.0
    save_model(model, str(out), meta)

    refused = cli(QUICK + ["--out", str(out)], tmp_path)
    assert refused.returncode == 1, refused.stderr
    proc = cli(QUICK + ["--resume", str(out), "--out", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    after = read_metadata(str(out))
    assert after["history"]["step"][-1] > steps
    assert after["quick"] is False          # still a full run's model: a quick run continued it
