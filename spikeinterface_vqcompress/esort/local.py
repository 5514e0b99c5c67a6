"""Local inference: each gated window through the spatial layer of the channels near its spike only.

E-Sort's spatial layer reads the temporal features of every channel (``16 C x 256`` multiply-adds per
window): at 384 channels it is most of the network's cost, and the windows the amplitude gate opens
grow with the channel count (37 % of them on a 384-channel Neuropixels recording, against 15-17 % at
32-64 channels, most opened by noise crossings). Far from a spike a channel carries only noise, whose
features scatter around their mean. Local inference keeps the exact features of the channels within
``radius_um`` of each window's *centre channel* and replaces every other channel's features by their
noise mean (``baseline``), which folds into a per-centre bias:

    pre-activation = bias + W [f_near ; E f_far] = (bias + W E f - W_near E f_near) + W_near f_near

so a window costs ``16 K x 256`` multiply-adds for the ``K`` channels within the radius instead of
``16 C x 256`` (and its temporal layers ``K`` channels instead of ``C``). With a radius that covers the
probe it is the full network (up to float rounding; tested).

Centre channels come from the gate's own crossings: a window gets one centre per channel that
crosses the gate within ``margin`` samples of the window's centre and crosses it more strongly than
every other crossing channel within ``radius_um`` (a spatial local maximum of the crossing strength),
so a window holding two spikes far apart is computed around each, and its probability is the largest
of its centres'. Windows no crossing opens are not computed, as with the gate alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch

from spikeinterface_vqcompress.esort.model import ESortNet, temporal_columns, temporal_rows


def _distances(channel_locations) -> np.ndarray:
    locations = np.asarray(channel_locations, dtype=float)
    if locations.ndim != 2 or len(locations) == 0:
        raise ValueError(f"channel_locations must be a (num_channels, 2 or 3) array, got shape {locations.shape}")
    return np.linalg.norm(locations[:, None, :] - locations[None, :, :], axis=2)


def channel_windows(channel_locations, radius_um: float):
    """Each channel's neighbourhood as a run of ``width`` consecutive channels in depth order.

    Parameters
    ----------
    channel_locations : array-like
        ``(C, 2 or 3)`` contact positions in um.
    radius_um : float
        Channels within this distance of a channel must lie in its run.

    Returns
    -------
    order : np.ndarray
        ``(C,)`` the channels sorted by depth (last coordinate of a 2-D position is depth), then by
        the other coordinate.
    start : np.ndarray
        ``(C,)`` position in ``order`` of the first channel of each channel's run.
    width : int
        Channels in every run: the fewest consecutive channels in depth order that hold every
        channel's neighbourhood (runs at the probe's ends are shifted inside it).
    """
    distances = _distances(channel_locations)
    if not radius_um > 0:
        raise ValueError(f"the spatial radius must be > 0 um, got {radius_um}")
    locations = np.asarray(channel_locations, dtype=float)
    order = np.lexsort(tuple(locations[:, axis] for axis in range(locations.shape[1])))  # last axis first
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    within = distances <= radius_um
    low = np.array([position[row].min() for row in within])
    high = np.array([position[row].max() for row in within])
    width = int((high - low).max()) + 1
    start = np.minimum(low, len(order) - width)
    return order.astype(np.int64), start.astype(np.int64), width


def neighbour_mask(channel_locations, radius_um: float) -> torch.Tensor:
    """``(C, C)`` bool: ``[a, b]`` when channels a and b are within ``radius_um`` of each other."""
    return torch.from_numpy(_distances(channel_locations) <= radius_um)


@dataclass
class LocalSpatial:
    """The spatial layer cut to each centre channel's neighbourhood (:func:`local_spatial`).

    Attributes
    ----------
    order, start, width
        Each centre's channels ``order[start[c]:start[c] + width]`` (:func:`channel_windows`).
    near : torch.Tensor
        ``(C, C)`` bool, the centres' neighbourhoods (:func:`neighbour_mask`): two crossings closer
        than the radius belong to one centre.
    bias : torch.Tensor
        ``(C, 256)`` folded bias of each centre, with the features of the channels outside its run at
        their noise mean.
    weight : torch.Tensor
        ``(C 16, 256)`` folded spatial weights, rows of channel ``order[0]`` first (16 features each):
        a centre's weights are the contiguous rows of its run.
    """

    order: torch.Tensor
    start: torch.Tensor
    width: int
    near: torch.Tensor
    bias: torch.Tensor
    weight: torch.Tensor

    def to(self, device) -> "LocalSpatial":
        """The same layer on ``device``."""
        return LocalSpatial(self.order.to(device), self.start.to(device), self.width, self.near.to(device),
                            self.bias.to(device), self.weight.to(device))

    def channels(self, centres: torch.Tensor) -> torch.Tensor:
        """``(len(centres), width)`` the channels of each centre's run."""
        return self.order[self.start[centres][:, None] + torch.arange(self.width, device=centres.device)]


@torch.no_grad()
def local_spatial(model: ESortNet, channel_locations, radius_um: float, baseline: torch.Tensor,
                  dtype=torch.float32) -> LocalSpatial:
    """Cut ``model``'s folded spatial layer to runs of channels around each centre (:func:`channel_windows`),
    the features of the channels outside a run replaced by ``baseline`` (``(C, 16)``, their noise mean)."""
    bias3, weight_t = model._spatial_weights()  # (256,), (C 16, 256) channel-major
    num_channels = model.config["num_channels"]
    if len(channel_locations) != num_channels or baseline.shape[0] != num_channels:
        raise ValueError(f"channel_locations ({len(channel_locations)}) and baseline ({tuple(baseline.shape)}) must have "
                         f"one row per channel of the model ({num_channels})")
    order, start, width = (torch.as_tensor(value) if isinstance(value, np.ndarray) else value
                           for value in channel_windows(channel_locations, radius_um))
    features = baseline.shape[1]
    weight = weight_t.reshape(num_channels, features, -1)[order]  # (C, 16, 256) in depth order
    contributions = torch.einsum("cf,cfo->co", baseline[order], weight)  # each channel at its noise mean
    cumulative = torch.cat([contributions.new_zeros((1, contributions.shape[1])), contributions.cumsum(0)])
    inside = cumulative[start + width] - cumulative[start]  # (C, 256): the run's channels at their mean
    bias = bias3 + contributions.sum(0) - inside
    return LocalSpatial(order, start, int(width), neighbour_mask(channel_locations, radius_um),
                        bias.to(dtype), weight.reshape(num_channels * features, -1).to(dtype).contiguous())


@torch.no_grad()
def noise_baseline(model: ESortNet, traces: torch.Tensor, rows: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """``(C, 16)`` mean temporal features of the windows ``rows`` of normalised ``traces`` (windows of
    noise: rows the gate leaves closed)."""
    window = model.window_num_samples
    if len(rows) == 0:
        raise ValueError("no noise window to estimate the far channels' mean features from")
    samples = traces[(torch.arange(window, device=traces.device)[:, None] + stride * rows[None, :]).reshape(-1)]  # (W B, C)
    columns = temporal_columns(model, samples.reshape(window, -1))  # (16, B C)
    return columns.reshape(columns.shape[0], len(rows), -1).mean(dim=1).t().contiguous()  # (C, 16)


_SIGNS = {"neg": -1, "pos": 1, "both": 0}


def _use_kernels(device) -> bool:
    """Whether the numba kernels run (CPU tensors); elsewhere the same steps run in torch."""
    return torch.device(device).type == "cpu"


@numba.njit(cache=True, nogil=True, inline="always")
def _strength(value, sign):  # pragma: no cover - compiled
    return -value if sign < 0 else (abs(value) if sign == 0 else value)


@numba.njit(cache=True, nogil=True)
def _crossings(x, inverse_thresholds, sign):  # pragma: no cover - compiled
    """``(times, channels, strengths)`` of the samples of ``x`` ``(T, C)`` whose strength (the sample
    times ``inverse_thresholds``, negated for ``sign`` -1, in absolute value for 0) exceeds 1: a pass
    to count them, a pass to fill them in."""
    length, channels = x.shape
    count = 0
    for t in range(length):
        for c in range(channels):
            count += _strength(x[t, c] * inverse_thresholds[c], sign) > 1.0
    times = np.empty(count, np.int64)
    chans = np.empty(count, np.int64)
    strengths = np.empty(count, np.float32)
    k = 0
    for t in range(length):
        for c in range(channels):
            value = _strength(x[t, c] * inverse_thresholds[c], sign)
            if value > 1.0:
                times[k], chans[k], strengths[k] = t, c, value
                k += 1
    return times, chans, strengths


@numba.njit(cache=True, nogil=True)
def _gather_windows(x, rows, stride, near, scale, window):  # pragma: no cover - compiled
    """``(P K, window)`` float32: row ``p K + k`` the window of row ``rows[p]`` on channel
    ``near[p, k]`` of ``x`` ``(T, C)``, times that channel's ``scale`` (the samples of one pair stay
    in the cache while its channels are read)."""
    pairs, width = near.shape
    out = np.empty((pairs * width, window), np.float32)
    for p in range(pairs):
        start = rows[p] * stride
        for k in range(width):
            c = near[p, k]
            factor = scale[c]
            row = p * width + k
            for w in range(window):
                out[row, w] = x[start + w, c] * factor
    return out


@numba.njit(cache=True, nogil=True)
def _spatial_maxima(rows, chans, strengths, near):  # pragma: no cover - compiled
    """Whether each crossing (sorted by row) is the strongest of its row within its neighbourhood
    (``near[a, b]``: b near a; ties: the lower channel wins)."""
    count = len(rows)
    keep = np.ones(count, np.bool_)
    begin = 0
    while begin < count:
        end = begin
        while end < count and rows[end] == rows[begin]:
            end += 1
        for i in range(begin, end):
            for j in range(begin, end):
                if i != j and near[chans[i], chans[j]] and (
                        strengths[j] > strengths[i] or (strengths[j] == strengths[i] and chans[j] < chans[i])):
                    keep[i] = False
                    break
        begin = end
    return keep


def window_centres(traces: torch.Tensor, thresholds: torch.Tensor, near: torch.Tensor, window_num_samples: int,
                   stride: int, margin_samples: int, peak_sign: str = "neg"):
    """The gated windows of a chunk and their centre channels (see the module docstring).

    Parameters
    ----------
    traces : torch.Tensor
        ``(T, C)`` traces (not normalised).
    thresholds : torch.Tensor
        ``(C,)`` gate of each channel in the traces' units (``gate_threshold x noise``).
    near : torch.Tensor
        ``(C, C)`` bool, which channels are within the radius of each other (``LocalSpatial.near``).
    window_num_samples, stride, margin_samples, peak_sign
        As :func:`~spikeinterface_vqcompress.esort.postprocessing.candidate_rows`.

    Returns
    -------
    rows, centres : torch.Tensor
        int64 window rows (``[i * stride, i * stride + W)``) and their centre channels, one pair per
        centre, sorted by row.
    """
    num_rows = (traces.shape[0] - window_num_samples) // stride + 1
    num_channels = traces.shape[1]
    device = traces.device
    empty = torch.zeros(0, dtype=torch.long, device=device)
    if num_rows <= 0:
        return empty, empty.clone()
    if _use_kernels(device):
        times, channels, values = (torch.from_numpy(array) for array in _crossings(
            traces.numpy(), (1.0 / thresholds).float().numpy(), _SIGNS[peak_sign]))
    else:  # the same on a GPU, in torch
        strength = traces / thresholds
        strength = -strength if peak_sign == "neg" else (strength.abs() if peak_sign == "both" else strength)
        times, channels = torch.nonzero(strength > 1.0, as_tuple=True)
        values = strength[times, channels]
    if len(times) == 0:
        return empty, empty.clone()
    # every row whose centre (row * stride + W // 2) lies within the margin of the crossing
    half = window_num_samples // 2
    first = torch.clamp(-torch.div(-(times - margin_samples - half), stride, rounding_mode="floor"), min=0)
    last = torch.clamp(torch.div(times + margin_samples - half, stride, rounding_mode="floor"), max=num_rows - 1)
    counts = torch.clamp(last - first + 1, min=0)
    keep = counts > 0
    first, counts, channels, values = first[keep], counts[keep], channels[keep], values[keep]
    event = torch.repeat_interleave(torch.arange(len(counts), device=device), counts)
    offset = torch.arange(len(event), device=device) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    keys = (first[event] + offset) * num_channels + channels[event]
    unique_keys, inverse = torch.unique(keys, return_inverse=True)  # sorted: by row, then channel
    best = torch.zeros(len(unique_keys), dtype=values.dtype, device=device).scatter_reduce_(0, inverse, values[event], "amax",
                                                                              include_self=False)
    rows, chans = unique_keys // num_channels, unique_keys % num_channels
    is_centre = _spatial_maxima(rows.cpu().numpy(), chans.cpu().numpy(), best.cpu().numpy(), near.cpu().numpy())
    is_centre = torch.from_numpy(is_centre).to(device)
    return rows[is_centre], chans[is_centre]


@torch.no_grad()
def forward_local(model: ESortNet, traces: torch.Tensor, rows: torch.Tensor, centres: torch.Tensor,
                  local: LocalSpatial, scale: torch.Tensor, stride: int = 1, batch_size: int = 16384) -> torch.Tensor:
    """Probabilities of windows ``rows`` of ``traces`` around their ``centres`` (local inference).

    The windows' samples on each centre's neighbourhood are gathered (a numba kernel on CPUs), the
    temporal layers run on all of them as two matrix products, and the spatial layer as one product
    per run of channels (contiguous rows of the weights) over the windows sorted by run.

    Parameters
    ----------
    model : ESortNet
    traces : torch.Tensor
        ``(T, C)`` traces, multiplied by ``scale`` (``(C,)``, 1 / noise) to normalise them.
    rows, centres : torch.Tensor
        From :func:`window_centres`.
    local : LocalSpatial
    stride : int, default: 1
    batch_size : int, default: 16384
        Windows per batch (bounds the gathered samples: ``60 x K`` floats per window).

    Returns
    -------
    probabilities : torch.Tensor
        ``(len(rows), num_units)``, one row per (window, centre) pair.
    """
    window = model.window_num_samples
    out = traces.new_empty((len(rows), model.head.out_features))
    starts = local.start[centres]
    order = torch.argsort(starts, stable=True)  # windows of one run of channels together
    rows, centres, starts = rows[order], centres[order], starts[order]
    features_per_channel = local.weight.shape[0] // local.order.shape[0]
    for begin in range(0, len(rows), batch_size):
        batch_rows, batch_centres = rows[begin:begin + batch_size], centres[begin:begin + batch_size]
        count = len(batch_rows)
        near = local.channels(batch_centres)  # (B, K)
        if _use_kernels(traces.device):
            samples = torch.from_numpy(_gather_windows(traces.numpy(), batch_rows.numpy(), int(stride), near.numpy(),
                                                       scale.numpy(), window))
        else:
            offsets = torch.arange(window, device=traces.device)[None, None, :]
            samples = (traces[offsets + stride * batch_rows[:, None, None], near[:, :, None]]
                       * scale[near][:, :, None]).reshape(-1, window)
        features = temporal_rows(model, samples).reshape(count, -1)  # (B, K 16), slot-major
        features = features.to(local.weight.dtype)
        hidden = local.bias[batch_centres]  # (B, 256)
        unique_starts, counts = torch.unique_consecutive(starts[begin:begin + batch_size], return_counts=True)
        first = 0
        for start, number in zip(unique_starts.tolist(), counts.tolist()):  # contiguous: sorted by run
            weight = local.weight[start * features_per_channel:(start + local.width) * features_per_channel]
            hidden[first:first + number].addmm_(features[first:first + number], weight)
            first += number
        hidden = hidden.relu_().to(model.head.weight.dtype)
        out[order[begin:begin + count]] = torch.sigmoid(torch.addmm(model.head.bias, hidden, model.head.weight.t()))
    return out
