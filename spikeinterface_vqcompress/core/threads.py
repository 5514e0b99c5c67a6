"""What a codec running in SpikeInterface's (forked) chunk workers needs: PyTorch on one thread, a
worker that exits with its parent, and learned decoders on one thread everywhere."""

from __future__ import annotations

_TORCH_LIMITED_IN_PID = None


def limit_torch_threads_in_worker(num_threads: int = 1) -> None:
    """In a worker process of a pool, run PyTorch on ``num_threads`` threads (once per process).

    A process forked from a parent that has already run PyTorch on several threads hangs in its
    first multi-threaded PyTorch operation (the OpenMP runtime is not fork-safe), and
    ``threadpoolctl`` limits do not reach PyTorch's own thread count. Learned codecs encode and
    decode in SpikeInterface's chunk workers (``n_jobs > 1``), so the container calls this before
    every encode and decode; it does nothing in the main process or when PyTorch is not imported.
    One thread per worker is SpikeInterface's default (``max_threads_per_worker=1``).
    """
    global _TORCH_LIMITED_IN_PID
    import multiprocessing
    import os
    import sys

    if _TORCH_LIMITED_IN_PID == os.getpid() or multiprocessing.parent_process() is None or "torch" not in sys.modules:
        return
    sys.modules["torch"].set_num_threads(max(int(num_threads), 1))
    _TORCH_LIMITED_IN_PID = os.getpid()


_WATCHING_PARENT_IN_PID = None


def exit_when_parent_dies(poll_s: float = 1.0) -> None:
    """In a worker process of a pool, exit as soon as the parent process is gone (once per process).

    A main process killed with SIGKILL cannot stop its pool, and the idle workers (each holding a
    copy of the recording and the codec) would stay forever; a daemon thread polls the parent pid.
    Does nothing in the main process.
    """
    global _WATCHING_PARENT_IN_PID
    import multiprocessing
    import os
    import threading
    import time

    if _WATCHING_PARENT_IN_PID == os.getpid() or multiprocessing.parent_process() is None:
        return
    _WATCHING_PARENT_IN_PID = os.getpid()
    parent = os.getppid()
    import signal

    if threading.current_thread() is threading.main_thread():
        # Ctrl-C reaches the whole process group: the main process stops the pool, workers stay quiet
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch():
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="vqcompress-exit-with-parent", daemon=True).start()


def prepare_worker() -> None:
    """Called before every chunk a worker encodes or decodes: :func:`limit_torch_threads_in_worker`
    and :func:`exit_when_parent_dies` (both cheap no-ops after the first call and in the main process)."""
    limit_torch_threads_in_worker()
    exit_when_parent_dies()


class single_torch_thread:
    """Context manager: PyTorch on one thread inside, the previous thread count restored after.

    A decoder whose output is rounded to integers must give the same samples in the main process
    (several threads) and in chunk workers (one thread, see :func:`limit_torch_threads_in_worker`):
    float sums split over a different number of threads round differently, and one sample in
    ~60000 came out one LSB apart. Learned decoders run inside this context.
    """

    def __enter__(self):
        import torch

        self._previous = torch.get_num_threads()
        if self._previous != 1:
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc_info):
        import torch

        if self._previous != 1:
            torch.set_num_threads(self._previous)
        return False
