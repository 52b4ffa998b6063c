"""ptengine.bench.cli: the command line, and where it finds the baseline."""
import os
import subprocess
import sys
from pathlib import Path

import ptengine
from ptengine.bench import baseline
from ptengine.bench.cli import bench_main
from ptengine.bench.scenarios import scenario_figures


def test_cli_rejects_pytest_args_without_compare(capsys):
    """pytest arguments (after --) only make sense for --compare."""
    assert bench_main(["--check", "--", "-k", "x"]) == 2
    assert "only for --compare" in capsys.readouterr().err


def one_scenario(monkeypatch):
    """Only one small scenario is computed: what is tested here is where the baseline is
    found, not the figures."""
    monkeypatch.setattr(baseline, "SECTIONS",
                        {"scenarios": lambda: scenario_figures(["locked_guards"])})


def test_baseline_is_found_in_the_checkout_of_the_working_directory(tmp_path, monkeypatch,
                                                                     capsys):
    """In a checkout (a folder with pyproject.toml), from any folder below it, the baseline
    is its bench/baseline.json."""
    one_scenario(monkeypatch)
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "src" / "deep").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "src" / "deep")
    assert bench_main(["--update"]) == 0
    assert (tmp_path / "bench" / "baseline.json").is_file()
    assert bench_main(["--check"]) == 0
    assert f"figures match {tmp_path / 'bench' / 'baseline.json'}" in capsys.readouterr().out


def test_outside_a_checkout_the_baseline_must_be_named(tmp_path, monkeypatch, capsys):
    """As installed from a wheel, run from a folder that is no checkout: a clear error (not a
    path below site-packages), and with --baseline FILE the check works."""
    one_scenario(monkeypatch)
    monkeypatch.chdir(tmp_path)
    for mode in ("--check", "--update", "--compare"):
        assert bench_main([mode]) == 2
        err = capsys.readouterr().err
        assert "not inside a source checkout" in err, err
        assert ("--baseline FILE" in err) == (mode != "--compare"), err
    assert not list(tmp_path.iterdir())                  # nothing written anywhere
    path = tmp_path / "mine.json"
    assert bench_main(["--update", "--baseline", str(path)]) == 0
    assert bench_main(["--check", "--baseline", str(path)]) == 0
    assert "figures match" in capsys.readouterr().out


def test_installed_command_outside_a_checkout(tmp_path):
    """The real command, in a fresh interpreter started in a temporary folder."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(ptengine.__file__).parent.parent), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "ptengine.cli", "bench", "--check"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc
    assert "not inside a source checkout" in proc.stderr
    assert "--baseline FILE" in proc.stderr
