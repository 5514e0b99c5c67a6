"""Thread limits for codecs that run PyTorch in SpikeInterface's (forked) chunk workers."""

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
