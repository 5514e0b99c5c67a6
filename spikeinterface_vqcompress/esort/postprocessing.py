"""E-Sort post-processing: smoothing, threshold and local-maximum peak picking, streamed in chunks.

Everything here is vectorised in torch (one loop per chunk, none per spike) and runs on the model's
device. A chunk of ``chunk_num_samples`` centres is extended on both sides by the margins the window
(``W // 2``), the smoothing kernel (``kernel_size // 2``) and the peak neighbourhood
(``min_distance_samples``) need, so the spikes found are exactly those a single pass over the whole
recording would find.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from spikeinterface_vqcompress.esort.defaults import DEFAULT_GATE_PEAK_SIGN, DEFAULT_THRESHOLD
from spikeinterface_vqcompress.esort.model import check_inference_dtype


def triangular_kernel(kernel_size: int = 17) -> torch.Tensor:
    """A normalised triangular kernel of odd length ``kernel_size`` (sums to 1)."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
    half = kernel_size // 2
    kernel = (half + 1 - torch.arange(-half, half + 1).abs()).float()
    return kernel / kernel.sum()


def smooth_probabilities(probabilities: torch.Tensor, kernel: torch.Tensor, padding: bool = False) -> torch.Tensor:
    """Convolve each unit's probability trace ``(T, K)`` with ``kernel``.

    With ``padding=False`` the result is the "valid" part, ``T - len(kernel) + 1`` rows; with
    ``padding=True`` it keeps ``T`` rows (zero padding).
    """
    num_units = probabilities.shape[1]
    x = probabilities.t().unsqueeze(0)  # (1, K, T)
    weight = kernel.to(probabilities).view(1, 1, -1).expand(num_units, 1, -1)
    y = F.conv1d(x, weight, groups=num_units, padding=len(kernel) // 2 if padding else 0)
    return y[0].t()


def pick_peaks(smoothed: torch.Tensor, threshold: float, min_distance_samples: int):
    """Local maxima above ``threshold`` of each column of ``smoothed`` (``(T, K)``), valid part only.

    A row t is a peak of unit k when its value is >= ``threshold``, is the maximum over
    ``[t - d, t + d]`` (``d = min_distance_samples``) and is strictly larger than row t - 1 (so a
    flat top gives one peak). Only rows ``d .. T - d - 1`` are examined; the returned row indices are
    relative to row ``d``.

    Returns
    -------
    rows, units : torch.Tensor
        Peak positions (relative to row ``d``) and unit indices, sorted by position.
    """
    d = int(min_distance_samples)
    if smoothed.shape[0] < 2 * d + 1:
        empty = torch.zeros(0, dtype=torch.long, device=smoothed.device)
        return empty, empty.clone()
    centre = smoothed[d:smoothed.shape[0] - d]  # (T - 2d, K)
    # only the (few) values above the threshold are examined: each against its own neighbourhood
    rows, units = torch.nonzero(centre >= threshold, as_tuple=True)  # sorted by row, then unit
    neighbourhoods = smoothed.unfold(0, 2 * d + 1, 1)[rows, units]  # (N, 2d + 1), value at index d
    value = centre[rows, units]
    is_peak = value >= neighbourhoods.max(dim=1).values
    if d >= 1:
        is_peak &= value > neighbourhoods[:, d - 1]
    return rows[is_peak], units[is_peak]


GATE_PEAK_SIGNS = ("neg", "pos", "both")


#: most chunks :func:`detect_spikes` sorts at once with ``num_workers="auto"`` (each holds its chunk,
#: ~100 MB for 2 s of 384 channels at 32 kHz, and its intermediate layers)
MAX_AUTO_WORKERS = 8


def check_num_workers(num_workers):
    """``num_workers`` if it is "auto" or a positive integer, else a ValueError saying so."""
    if num_workers == "auto" or (isinstance(num_workers, (int, np.integer)) and not isinstance(num_workers, bool)
                                 and num_workers >= 1):
        return num_workers
    raise ValueError(f"num_workers must be 'auto' or a positive integer (chunks sorted at once), got {num_workers!r}")


def chunk_workers(device) -> int:
    """Chunks to sort at once: torch's CPU thread count on a CPU (at most :data:`MAX_AUTO_WORKERS`),
    1 on a GPU."""
    return 1 if torch.device(device).type != "cpu" else max(1, min(torch.get_num_threads(), MAX_AUTO_WORKERS))


def run_chunks_in_threads(function, starts, workers: int) -> list:
    """``[function(start) for start in starts]``, ``workers`` at a time in threads, torch on one thread
    each meanwhile (its previous thread count restored after)."""
    from concurrent.futures import ThreadPoolExecutor

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(function, starts))
    finally:
        torch.set_num_threads(threads)


def check_gate_peak_sign(peak_sign: str) -> str:
    """``peak_sign`` if it is one of :data:`GATE_PEAK_SIGNS`, else a ValueError naming the choices."""
    if peak_sign not in GATE_PEAK_SIGNS:
        raise ValueError(f"gate_peak_sign must be one of {GATE_PEAK_SIGNS} (as SpikeInterface's peak_sign), "
                         f"got {peak_sign!r}")
    return peak_sign


def check_local_gate(local: bool, gate_threshold) -> None:
    """A ValueError when local inference (``local``) is asked for without the amplitude gate."""
    if local and gate_threshold is None:
        raise ValueError("spatial_radius_um needs the amplitude gate: local inference needs the amplitude gate's "
                         "crossings to find each window's centre channel; set gate_threshold, or spatial_radius_um=None "
                         "to run the whole network")


def candidate_rows(traces: torch.Tensor, window_num_samples: int, stride: int, gate_threshold: float,
                   margin_samples: int, peak_sign: str = DEFAULT_GATE_PEAK_SIGN) -> torch.Tensor:
    """Rows (windows ``[i * stride, i * stride + W)``) whose centre lies within ``margin_samples`` of a
    sample where some channel of the normalised ``(T, C)`` traces crosses ``gate_threshold``: below
    ``-gate_threshold`` (``peak_sign="neg"``), above it ("pos"), or either ("both", in absolute
    value). Returns sorted int64 row indices."""
    check_gate_peak_sign(peak_sign)
    num_rows = (traces.shape[0] - window_num_samples) // stride + 1
    # max over channels of the signed excursion, no copy of the traces
    if peak_sign == "neg":
        largest = -traces.amin(dim=1)
    elif peak_sign == "pos":
        largest = traces.amax(dim=1)
    else:
        largest = torch.maximum(traces.amax(dim=1), -traces.amin(dim=1))
    active = (largest > gate_threshold).float()[None, None]  # (1, 1, T)
    if margin_samples > 0:
        active = F.max_pool1d(active, kernel_size=2 * margin_samples + 1, stride=1, padding=margin_samples)
    centres = torch.arange(num_rows, device=traces.device) * stride + window_num_samples // 2
    return torch.nonzero(active[0, 0, centres] > 0, as_tuple=True)[0]


def detect_spikes(model, get_normalised_traces, num_samples: int, threshold: float = DEFAULT_THRESHOLD,
                  kernel_size: int = 17, min_distance_samples: int = 10, chunk_num_samples: int = 65536,
                  stride: int = 1, device="cpu", gate_threshold: float | None = None, gate_margin_samples: int = 8,
                  gate_peak_sign: str = DEFAULT_GATE_PEAK_SIGN, inference_dtype: str = "float32",
                  num_workers: int | str = 1, noise=None, local=None):
    """Run a fine-tuned E-Sort network over a whole recording segment and pick its spikes.

    Parameters
    ----------
    model : ESortNet
        The fine-tuned network (set to eval mode here).
    get_normalised_traces : callable
        ``get_normalised_traces(start_frame, end_frame) -> (end - start, C) float32 array`` of the
        segment's normalised traces (of its traces, divided here by ``noise``, when ``noise`` is
        given); frames are always inside ``[0, num_samples)``.
    num_samples : int
        Number of samples of the segment.
    threshold : float, default: 0.25
        Minimum smoothed probability of a spike.
    kernel_size : int, default: 17
        Length in samples of the triangular smoothing kernel (with ``stride`` s, the kernel has
        ``kernel_size // s`` points, made odd, spanning the same time).
    min_distance_samples : int, default: 10
        Two spikes of one unit are at least this far apart (peak neighbourhood half-width).
    chunk_num_samples : int, default: 65536
        Spike centres handled per chunk.
    stride : int, default: 1
        The network is evaluated on windows centred every ``stride`` samples; spike times are then
        known to ``stride`` samples.
    device : str | torch.device, default: "cpu"
        Where the network runs.
    gate_threshold : float | None, default: None
        Amplitude gate, in noise units: the network runs only on windows centred within
        ``gate_margin_samples`` of a sample where some channel's normalised trace exceeds it in
        absolute value; the other windows get probability 0. None runs it on every window.
    gate_margin_samples : int, default: 8
        Half-width of the gate around each supra-threshold sample. A spike whose smoothing support
        lies inside the gate (margin >= label tolerance 5 + kernel half-width 8) is found exactly as
        without the gate; 8 lost nothing against 13 on a training recording (esort_gate.md).
    gate_peak_sign : "neg" | "pos" | "both", default: "neg"
        Which crossings open the gate: below ``-gate_threshold`` (spike troughs; SpikeInterface's
        default ``peak_sign``), above ``gate_threshold``, or either.
    inference_dtype : "float32" | "bfloat16", default: "float32"
        Precision of the network's spatial layer (``ESortNet.forward_rows``): "bfloat16" is faster on
        CPUs with AVX512-BF16 or AMX and on GPUs, and moves the probabilities by a few thousandths.
    num_workers : int | "auto", default: 1
        Chunks processed at once, each in its own thread with one torch thread (reading and
        band-passing, network, peaks): on CPUs the layers are too small for torch's threads to keep
        several cores busy, whole chunks side by side do (1.2-1.35x faster on 2 cores at 384
        channels, ``benchmarks/results/esort_inference.md``). "auto": torch's thread count on a CPU
        (at most 8), 1 on a GPU. The spikes do not depend on it (chunks are independent, their
        results kept in order).
    noise : np.ndarray | None, default: None
        ``(C,)`` noise level of each channel when ``get_normalised_traces`` returns traces that are not
        normalised yet (each chunk is then scaled here, or only the samples the network reads with
        ``local``); None: they are normalised.
    local : LocalSpatial | None, default: None
        Local inference (:mod:`~spikeinterface_vqcompress.esort.local`): each gated window through the
        spatial layer of the channels near its centre channels only. Needs the gate. None: the whole
        spatial layer on every gated window.

    Returns
    -------
    sample_indices, unit_indices : np.ndarray
        Spike samples (sorted) and the index of their unit (a column of the network's head).
    """
    from spikeinterface_vqcompress.esort.local import forward_local, window_centres

    model.eval()
    check_local_gate(local is not None, gate_threshold)
    scale = torch.ones(model.config["num_channels"]) if noise is None else torch.from_numpy(
        1.0 / np.asarray(noise, dtype=np.float32))
    check_gate_peak_sign(gate_peak_sign)
    check_inference_dtype(inference_dtype)
    stride = int(stride)
    device = torch.device(device)
    scale = scale.to(device)
    kernel_points = max(1, kernel_size // stride)
    kernel_points += 1 - kernel_points % 2  # odd
    kernel = triangular_kernel(kernel_points).to(device)
    distance_rows = max(1, int(round(min_distance_samples / stride)))
    window = model.window_num_samples
    half_window = window // 2
    pad_rows = kernel_points // 2 + distance_rows
    chunk_num_samples = max(stride, (int(chunk_num_samples) // stride) * stride)

    def network(traces):
        """``(rows, units)`` probabilities of every window of a chunk (0 where the gate is closed)."""
        probabilities = traces.new_zeros(((len(traces) - window) // stride + 1, model.head.out_features))
        if local is not None:
            rows, centres = window_centres(traces, gate_threshold / scale, local.near, window, stride,
                                           gate_margin_samples, gate_peak_sign)
            if len(rows):
                pairs = forward_local(model, traces, rows, centres, local, scale, stride=stride)
                probabilities.scatter_reduce_(0, rows[:, None].expand_as(pairs), pairs, "amax")
            return probabilities
        if noise is not None:
            traces = traces * scale
        if gate_threshold is None:
            return model.forward_traces(traces, stride=stride, dtype=inference_dtype)
        rows = candidate_rows(traces, window, stride, gate_threshold, gate_margin_samples, gate_peak_sign)
        if len(rows):
            probabilities[rows] = model.forward_rows(traces, rows, stride=stride, dtype=inference_dtype)
        return probabilities

    def chunk(start):
        end = min(start + chunk_num_samples, num_samples)
        num_rows = -(-(end - start) // stride) + 2 * pad_rows  # centres start - pad_rows * stride + i * stride
        first = start - pad_rows * stride - half_window
        last = first + (num_rows - 1) * stride + window
        traces = get_normalised_traces(max(first, 0), min(last, num_samples))
        traces = np.asarray(traces, dtype=np.float32)
        before, after = max(0, -first), max(0, last - num_samples)
        if before or after:
            traces = np.pad(traces, ((before, after), (0, 0)))
        with torch.no_grad():
            traces = torch.from_numpy(traces).to(device)
            probabilities = network(traces)
            smoothed = smooth_probabilities(probabilities, kernel)  # rows: centres start - distance_rows * stride ...
            rows, units = pick_peaks(smoothed, threshold, distance_rows)  # rows relative to start
        return rows.cpu().numpy().astype(np.int64) * stride + start, units.cpu().numpy().astype(np.int64)

    starts = range(0, num_samples, chunk_num_samples)
    workers = chunk_workers(device) if check_num_workers(num_workers) == "auto" else int(num_workers)
    if workers == 1 or len(starts) == 1:
        results = [chunk(start) for start in starts]
    else:
        results = run_chunks_in_threads(chunk, starts, workers)
    all_samples = [samples for samples, _ in results]
    all_units = [units for _, units in results]
    samples = np.concatenate(all_samples) if all_samples else np.zeros(0, dtype=np.int64)
    units = np.concatenate(all_units) if all_units else np.zeros(0, dtype=np.int64)
    keep = (samples >= 0) & (samples < num_samples)
    return samples[keep], units[keep]
