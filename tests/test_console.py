"""QuietConsole: third-party output (Python, C-level, child processes) to the log; ours to the terminal."""

import subprocess
import sys
import textwrap


def run_script(tmp_path, body: str):
    script = textwrap.dedent(f"""
        import logging, os, subprocess, sys
        from spikeinterface_vqcompress.console import QuietConsole
        log_path = {str(tmp_path / "run.log")!r}
    """) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


def test_third_party_output_goes_to_the_log_and_ours_to_the_terminal(tmp_path):
    output = run_script(tmp_path, """
        with QuietConsole(log_path, progress_bar=False) as console:
            print("python print")
            print("python stderr", file=sys.stderr)
            os.write(1, b"c-level write\\n")
            subprocess.run([sys.executable, "-c", "print('child process')"], check=True)
            logging.getLogger("spikeinterface_vqcompress.core").warning("compiling kernels")
            logging.getLogger("numba").warning("third-party log")
            console.say("[1/1] our stage")
            with console.progress(total=2, desc="stage") as bar:
                bar.update(2)
        print("after the console")
    """)
    assert output.returncode == 0, output.stderr
    log = (tmp_path / "run.log").read_text()
    for line in ("python print", "python stderr", "c-level write", "child process", "third-party log"):
        assert line in log and line not in output.stdout + output.stderr
    assert output.stdout.splitlines() == ["note: compiling kernels", "[1/1] our stage", "after the console"]
    assert "[vqcompress] [1/1] our stage" in log
    assert output.stderr == ""


def test_an_error_restores_the_terminal_and_names_the_log(tmp_path):
    output = run_script(tmp_path, """
        try:
            with QuietConsole(log_path) as console:
                print("noise before the failure")
                raise RuntimeError("boom")
        except RuntimeError as error:
            print(f"error: {error}", file=sys.stderr)
        print("terminal is back")
    """)
    assert output.returncode == 0
    assert output.stdout.strip() == "terminal is back"
    assert "run.log" in output.stderr and "error: boom" in output.stderr
    assert "noise before the failure" in (tmp_path / "run.log").read_text()


def test_disabled_console_passes_everything_through(tmp_path):
    output = run_script(tmp_path, """
        with QuietConsole(log_path, enabled=False, progress_bar=False) as console:
            print("python print")
            console.say("ours")
    """)
    assert output.stdout.splitlines() == ["python print", "ours"]
    assert not (tmp_path / "run.log").exists()


def test_steps_print_a_line_per_step_above_the_bar(tmp_path):
    output = run_script(tmp_path, """
        with QuietConsole(log_path, progress_bar=False) as console:
            with console.steps(total=2, desc="codecs") as step:
                print("sorter noise")
                step("  first done")
                step("  second done")
    """)
    assert output.returncode == 0, output.stderr
    assert output.stdout.splitlines() == ["  first done", "  second done"]
    assert "sorter noise" in (tmp_path / "run.log").read_text()
