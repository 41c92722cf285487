"""The `convkit` command: every subcommand has --help; shape prints the numbers; errors are one
line."""
import subprocess
import sys

import pytest

from convkit.cli import COMMANDS, main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: convkit " + command in capsys.readouterr().out


def test_shape_prints_seed_layer(capsys):
    code, out, _ = run(capsys, "shape", "--input", "2x3x4x5", "--out-channels", "6",
                       "--kernel-size", "3", "--groups", "3")
    assert code == 0
    assert "weight  (6, 1, 3, 3)" in out and "output  (2, 6, 2, 3)" in out
    assert "params  60" in out and "MACs    648" in out


def test_shape_same_padding_with_stride(capsys):
    code, out, _ = run(capsys, "shape", "-i", "1x3x224x224", "--out-channels", "64", "-k", "7",
                       "--stride", "2", "--padding", "same", "--no-bias")
    assert code == 0
    assert "output  (1, 64, 112, 112)" in out and "(top, bottom) = (2, 3)" in out
    assert "params  9,408" in out


@pytest.mark.parametrize("argv,message", [
    (["--groups", "2"], "groups=2 must divide in_channels=3"),
    (["--padding", "same", "--stride", "0"], "stride must be >= 1, got 0"),
    (["--kernel-size", "9"], "kernel height 9 is larger than the padded input height 4"),
    (["--padding-mode", "mirror"], "padding_mode must be one of"),
])
def test_shape_errors_are_one_line(argv, message, capsys):
    kernel = [] if "--kernel-size" in argv else ["--kernel-size", "3"]
    code, out, err = run(capsys, "shape", "--input", "2x3x4x5", "--out-channels", "6",
                         *kernel, *argv)
    assert code == 2 and out == ""
    assert err.startswith("convkit shape: error: ") and message in err
    assert err.count("\n") == 1


def test_python_dash_m_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "convkit", "shape", "-i", "3x8x8",
                           "--out-channels", "4", "-k", "3"], capture_output=True, text=True)
    assert done.returncode == 0 and "output  (4, 6, 6)" in done.stdout
