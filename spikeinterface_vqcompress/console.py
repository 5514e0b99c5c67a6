"""Quiet long runs on the command line: third-party output to a log file, ours to the terminal.

MEArec, NEURON, the sorters, numba and SpikeInterface's own jobs print thousands of lines on a
long command (``vqcompress demo``, ``vqcompress evaluate``). :class:`QuietConsole` sends everything
written to the process's standard output and error, by Python or by C code and by child
processes alike, to a log file, and gives the command its own channel to the terminal: stage
lines, one progress bar per stage, and this package's warnings (for example the notice before
numba compiles the broadband kernels).

Example
-------
>>> with QuietConsole("run.log") as console:              # doctest: +SKIP
...     console.say("[1/2] simulating")
...     with console.steps(total=3, desc="[2/2] codecs") as step:
...         for codec in codecs:
...             ...
...             step(f"  {codec}: done")                # a line above the bar, which advances
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

PACKAGE_LOGGER = "spikeinterface_vqcompress"


class _TerminalHandler(logging.Handler):
    """This package's warnings, printed to the terminal above any progress bar."""

    def __init__(self, console: "QuietConsole"):
        super().__init__(level=logging.WARNING)
        self.console = console

    def emit(self, record):
        try:
            self.console.say(f"note: {record.getMessage()}")
        except Exception:  # a notice must never break the run
            self.handleError(record)


class QuietConsole:
    """Route the process's stdout and stderr (file descriptors 1 and 2) to ``log_path`` while active.

    Parameters
    ----------
    log_path : str | Path
        The log file (appended to; its folder is created).
    enabled : bool, default: True
        False: a pass-through (everything prints as usual), for ``--verbose``.
    progress_bar : bool | None, default: None
        Show progress bars; None shows them when the terminal is interactive.

    Notes
    -----
    Child processes started while the console is active inherit the redirection, so sorters run in
    subprocesses and worker pools are quiet too. On leaving (also through an exception or Ctrl-C) the
    terminal is restored before the exception travels on, so its one-line error reaches the user.
    """

    def __init__(self, log_path, enabled: bool = True, progress_bar: bool | None = None):
        self.log_path = Path(log_path)
        self.enabled = enabled
        self._progress_bar = progress_bar
        self._saved_fds = None
        self._log = None
        self.terminal = sys.stdout
        self._handler = None

    def __enter__(self) -> "QuietConsole":
        if not self.enabled:
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        self._log = open(self.log_path, "a", buffering=1, encoding="utf-8")
        self._saved_fds = (os.dup(1), os.dup(2))
        self.terminal = os.fdopen(os.dup(self._saved_fds[0]), "w", buffering=1, encoding="utf-8", errors="replace")
        os.dup2(self._log.fileno(), 1)
        os.dup2(self._log.fileno(), 2)
        self._handler = _TerminalHandler(self)
        logging.getLogger(PACKAGE_LOGGER).addHandler(self._handler)
        return self

    def __exit__(self, *exc_info):
        if not self.enabled or self._saved_fds is None:
            return False
        logging.getLogger(PACKAGE_LOGGER).removeHandler(self._handler)
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os.dup2(self._saved_fds[0], 1)
        os.dup2(self._saved_fds[1], 2)
        for fd in self._saved_fds:
            os.close(fd)
        self._saved_fds = None
        with contextlib.suppress(Exception):
            self.terminal.flush()
            self.terminal.close()
        self.terminal = sys.stdout
        self._log.close()
        error = exc_info[1]
        if error is not None and not (isinstance(error, SystemExit) and error.code in (0, None)):
            print(f"(the full output of the run is in {self.log_path})", file=sys.stderr, flush=True)
        return False

    @property
    def show_progress(self) -> bool:
        """Whether progress bars are drawn."""
        if self._progress_bar is not None:
            return bool(self._progress_bar)
        isatty = getattr(self.terminal, "isatty", None)
        return bool(isatty and isatty())

    def say(self, text: str) -> None:
        """Print a line on the terminal (above any progress bar) and into the log."""
        from tqdm.auto import tqdm

        tqdm.write(text, file=self.terminal)
        if self._log is not None:
            self._log.write(f"[vqcompress] {text}\n")

    def progress(self, total: int, desc: str):
        """A progress bar on the terminal (a do-nothing bar when bars are off)."""
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, file=self.terminal, disable=not self.show_progress, leave=True,
                    dynamic_ncols=True)

    @contextlib.contextmanager
    def steps(self, total: int, desc: str):
        """A progress bar of ``total`` steps, as a callback: ``step(line)`` prints the line above the bar
        and advances it (what ``evaluate_codecs(progress=...)`` takes)."""
        with self.progress(total=total, desc=desc) as bar:
            def step(line: str) -> None:
                self.say(line)
                bar.update()

            yield step
