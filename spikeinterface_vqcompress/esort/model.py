"""E-Sort network (pure torch, no SpikeInterface).

A multilayer perceptron over a ``window_num_samples`` (60) x C window of per-channel normalised
traces (after Han & Wang, arXiv 2409.13067, rebuilt from the paper's description):

- per-channel temporal layers, shared by every channel: ``Linear(60 -> 8)`` + BN + ReLU, then
  ``Linear(8 -> 16)`` + BN + ReLU. They do not depend on the channel count;
- a spatial layer over all channels: ``Linear(16 * C -> 256)`` + BN + ReLU. It depends on C and on
  the channel order / probe geometry;
- a head ``Linear(256 -> num_units)`` with a sigmoid: output k is the probability that a spike of
  unit k is centred within ``+/- label_tolerance_samples`` (5) of the window centre.

What transfers across probes (our design decision, documented in the README and the model card):
the temporal layers are learned on every training probe together and always transfer. The shipped
backbone holds one spatial layer per training probe, keyed by a fingerprint of the probe geometry
(channel count + contact positions); a spatial layer transfers only to a recording whose geometry
fingerprint matches, otherwise the spatial layer starts from random weights and is learned during
fine-tuning (the temporal layers still transfer). A head never transfers: every recording gets a
new one.

For sorting, :meth:`ESortNet.forward_traces` runs the same weights as convolutions over a whole
chunk of traces (one window per sample) instead of materialising every window.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

WINDOW_NUM_SAMPLES = 60
TEMPORAL_SIZES = (8, 16)
SPATIAL_SIZE = 256
LABEL_TOLERANCE_SAMPLES = 5


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` when available, else ``cpu``; anything else goes to ``torch.device``."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from error


def geometry_fingerprint(channel_locations) -> str:
    """A short hash of a probe's channel count and contact positions (rounded to 0.1 um).

    Two recordings share a spatial layer only when this fingerprint matches: same number of
    channels, in the same order, at the same places.
    """
    locations = np.round(np.asarray(channel_locations, dtype=float), 1)
    text = json.dumps({"num_channels": int(locations.shape[0]), "locations": locations.tolist()})
    return f"c{locations.shape[0]}-" + hashlib.sha256(text.encode()).hexdigest()[:12]


class TemporalLayers(nn.Module):
    """Per-channel temporal layers 60 -> 8 -> 16 (BN + ReLU), shared by every channel."""

    def __init__(self, window_num_samples: int = WINDOW_NUM_SAMPLES, sizes=TEMPORAL_SIZES):
        super().__init__()
        self.window_num_samples = int(window_num_samples)
        self.linear1 = nn.Linear(self.window_num_samples, sizes[0])
        self.norm1 = nn.BatchNorm1d(sizes[0])
        self.linear2 = nn.Linear(sizes[0], sizes[1])
        self.norm2 = nn.BatchNorm1d(sizes[1])
        self.out_features = int(sizes[1])

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """``(B, C, W)`` -> ``(B, C, 16)``."""
        batch, channels, width = windows.shape
        x = windows.reshape(batch * channels, width)
        x = F.relu(self.norm1(self.linear1(x)))
        x = F.relu(self.norm2(self.linear2(x)))
        return x.reshape(batch, channels, -1)

    def forward_traces(self, traces: torch.Tensor, stride: int = 1) -> torch.Tensor:
        """``(T, C)`` traces -> ``(T', C, 16)`` features of every window ``[t, t + W)``, t = 0, stride, ..."""
        x = traces.t().unsqueeze(1)  # (C, 1, T)
        x = F.conv1d(x, self.linear1.weight.unsqueeze(1), self.linear1.bias, stride=stride)  # (C, 8, T')
        x = F.relu(_batch_norm_eval(x, self.norm1))
        x = F.conv1d(x, self.linear2.weight.unsqueeze(2), self.linear2.bias)  # (C, 16, T')
        x = F.relu(_batch_norm_eval(x, self.norm2))
        return x.permute(2, 0, 1)  # (T', C, 16)


def _batch_norm_eval(x: torch.Tensor, norm: nn.BatchNorm1d) -> torch.Tensor:
    """Apply a BatchNorm1d with its running statistics on ``(N, F, T)`` (inference only)."""
    return F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps)


class SpatialLayer(nn.Module):
    """``Linear(16 * C -> 256)`` + BN + ReLU over the temporal features of all channels."""

    def __init__(self, num_channels: int, in_features: int = TEMPORAL_SIZES[-1], out_features: int = SPATIAL_SIZE):
        super().__init__()
        self.num_channels = int(num_channels)
        self.linear = nn.Linear(in_features * self.num_channels, out_features)
        self.norm = nn.BatchNorm1d(out_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, C, 16)`` -> ``(B, 256)``."""
        x = features.reshape(features.shape[0], -1)
        if self.training:
            return F.relu(self.norm(self.linear(x)))
        return F.relu(F.batch_norm(self.linear(x), self.norm.running_mean, self.norm.running_var,
                                   self.norm.weight, self.norm.bias, False, 0.0, self.norm.eps))


class ESortNet(nn.Module):
    """The E-Sort network for one recording: temporal layers, a spatial layer, a sigmoid head.

    Parameters
    ----------
    num_channels : int
        Number of channels C of the recording.
    num_units : int
        Number of units (outputs).
    window_num_samples : int, default: 60
        Window length in samples.
    """

    def __init__(self, num_channels: int, num_units: int, window_num_samples: int = WINDOW_NUM_SAMPLES):
        super().__init__()
        if num_channels < 1 or num_units < 1:
            raise ValueError(f"num_channels and num_units must be >= 1, got {num_channels} and {num_units}")
        self.config = {"num_channels": int(num_channels), "num_units": int(num_units),
                       "window_num_samples": int(window_num_samples)}
        self.temporal = TemporalLayers(window_num_samples)
        self.spatial = SpatialLayer(num_channels)
        self.head = nn.Linear(SPATIAL_SIZE, num_units)

    @property
    def window_num_samples(self) -> int:
        return self.config["window_num_samples"]

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """``(B, C, W)`` normalised windows -> ``(B, num_units)`` logits (apply a sigmoid for probabilities)."""
        return self.head(self.spatial(self.temporal(windows)))

    @torch.no_grad()
    def forward_traces(self, traces: torch.Tensor, stride: int = 1, dtype: str | torch.dtype = "float32") -> torch.Tensor:
        """Probabilities of every window of a chunk (inference mode, running BN statistics).

        The batch norms are folded into the linear layers and the first (60-sample) layer runs as
        one dense matrix product over pairs of consecutive 60-sample blocks (a polyphase form of
        the convolution), which is much faster on CPUs than a 1-input-channel convolution.

        Parameters
        ----------
        traces : torch.Tensor
            ``(T, C)`` normalised traces, ``T >= window_num_samples``.
        stride : int, default: 1
            Step between consecutive windows in samples; must divide ``window_num_samples``.
        dtype : "float32" | "bfloat16", default: "float32"
            Precision of the spatial layer (see :meth:`forward_rows`).

        Returns
        -------
        probabilities : torch.Tensor
            ``(T', num_units)`` with ``T' = (T - W) // stride + 1``; row i is the window starting at
            sample ``i * stride`` (centred at ``i * stride + W // 2``).
        """
        window = self.window_num_samples
        if window % stride:
            raise ValueError(f"stride must divide the window length {window}, got {stride}")
        num_samples, num_channels = traces.shape
        if num_samples < window:
            raise ValueError(f"need at least {window} samples, got {num_samples}")
        num_windows = (num_samples - window) // stride + 1
        weight1, bias1 = _fold(self.temporal.linear1, self.temporal.norm1)  # (8, W), (8,)
        phases = window // stride
        hidden1 = weight1.shape[0]
        # polyphase matrix: row m of a 2W block pair, column (phase p, feature j) = weight1[j, m - p * stride]
        polyphase = traces.new_zeros(2 * window, phases, hidden1)
        for phase in range(phases):  # W / stride small copies, once per chunk
            polyphase[phase * stride:phase * stride + window, phase, :] = weight1.t()
        polyphase = polyphase.reshape(2 * window, phases * hidden1)
        last_start = (num_windows - 1) * stride
        num_blocks = last_start // window + 1
        x = traces.t()
        needed = (num_blocks + 1) * window
        if needed > num_samples:
            x = F.pad(x, (0, needed - num_samples))
        blocks = x[:, :needed].reshape(num_channels, num_blocks + 1, window)
        pairs = torch.cat([blocks[:, :-1], blocks[:, 1:]], dim=2)  # (C, Q, 2W)
        h = (pairs @ polyphase).reshape(num_channels, num_blocks * phases, hidden1)[:, :num_windows]
        h = torch.relu(h + bias1)  # (C, T', 8)
        weight2, bias2 = _fold(self.temporal.linear2, self.temporal.norm2)  # (16, 8), (16,)
        h = torch.relu(h @ weight2.t() + bias2)  # (C, T', 16)
        h = h.permute(1, 0, 2).reshape(num_windows, num_channels * h.shape[2])  # (T', C * 16), channel-major
        return _spatial_and_head(h, self._spatial_weights(dtype=check_inference_dtype(dtype)), self.head)

    def _spatial_weights(self, feature_major: bool = False, dtype=torch.float32):
        """Folded spatial layer as ``(bias (256,), weight^T (16 C, 256))`` in ``dtype``, its rows in the
        features' order (channel-major, or feature-major with ``feature_major``)."""
        weight3, bias3 = _fold(self.spatial.linear, self.spatial.norm)  # (256, C * 16), (256,)
        if feature_major:
            out_features, num_channels = weight3.shape[0], self.config["num_channels"]
            weight3 = weight3.reshape(out_features, num_channels, -1).transpose(1, 2).reshape(out_features, -1)
        return bias3.to(dtype), weight3.t().contiguous().to(dtype)

    @torch.no_grad()
    def forward_rows(self, traces: torch.Tensor, rows: torch.Tensor, stride: int = 1, batch_size: int = 256,
                     dtype: str | torch.dtype = "float32") -> torch.Tensor:
        """Probabilities of selected windows of a chunk only (inference mode, running BN statistics).

        Row ``i`` is the window starting at sample ``i * stride``, as in :meth:`forward_traces`. The
        selected windows are gathered time-major (``(W, B, C)``, each sample of a window a row of
        ``B * C`` values) so that each temporal layer is one matrix product over the whole batch, and
        run through the layers ``batch_size`` windows at a time; for a quarter of the windows this is
        several times faster than :meth:`forward_traces` on all of them.

        Parameters
        ----------
        traces : torch.Tensor
            ``(T, C)`` normalised traces.
        rows : torch.Tensor
            Row indices (int64), each ``< (T - W) // stride + 1``.
        stride : int, default: 1
        batch_size : int, default: 256
            Windows per batch (their gathered samples stay in the CPU cache through the temporal layers).
        dtype : "float32" | "bfloat16", default: "float32"
            Precision of the spatial layer, the largest (``16 C x 256`` multiply-adds per window; the
            temporal layers and the head stay float32). "bfloat16" runs it about twice as fast on CPUs
            with AVX512-BF16 or AMX (and on GPUs); elsewhere it can be slower than float32.

        Returns
        -------
        probabilities : torch.Tensor
            ``(len(rows), num_units)``.
        """
        dtype = check_inference_dtype(dtype)
        window = self.window_num_samples
        spatial = self._spatial_weights(feature_major=True, dtype=dtype)
        traces = traces.contiguous()
        num_channels = traces.shape[1]
        offsets = torch.arange(window, device=traces.device)[:, None]  # (W, 1)
        rows = rows.to(traces.device)
        out = traces.new_empty((len(rows), self.head.out_features))
        for begin in range(0, len(rows), batch_size):
            batch = rows[begin:begin + batch_size]
            count = len(batch)
            samples = traces.index_select(0, (offsets + stride * batch[None, :]).reshape(-1))  # (W B, C)
            samples = samples.reshape(window, count * num_channels)  # (W, B C): sample m of every window, channel
            h = temporal_columns(self, samples)  # (16, B C)
            features = h.reshape(-1, count, num_channels).transpose(0, 1).reshape(count, -1)  # (B, 16 C), feature-major
            out[begin:begin + count] = _spatial_and_head(features, spatial, self.head)
        return out


INFERENCE_DTYPES = ("float32", "bfloat16")


def _temporal_weights(model: ESortNet):
    """The temporal layers' weights and biases with their batch norms folded in (inference)."""
    return (*_fold(model.temporal.linear1, model.temporal.norm1),  # (8, W), (8,)
            *_fold(model.temporal.linear2, model.temporal.norm2))  # (16, 8), (16,)


def temporal_columns(model: ESortNet, samples: torch.Tensor) -> torch.Tensor:
    """The temporal layers (batch norms folded, inference) on ``samples`` ``(W, N)``, one window of one
    channel per column: ``(16, N)`` features."""
    weight1, bias1, weight2, bias2 = _temporal_weights(model)
    h = torch.addmm(bias1[:, None], weight1, samples).relu_()  # (8, N)
    return torch.addmm(bias2[:, None], weight2, h).relu_()  # (16, N)


def temporal_rows(model: ESortNet, samples: torch.Tensor) -> torch.Tensor:
    """:func:`temporal_columns` on ``samples`` ``(N, W)``, one window of one channel per row: ``(N, 16)``."""
    weight1, bias1, weight2, bias2 = _temporal_weights(model)
    h = torch.addmm(bias1, samples, weight1.t()).relu_()  # (N, 8)
    return torch.addmm(bias2, h, weight2.t()).relu_()  # (N, 16)


def check_inference_dtype(dtype) -> torch.dtype:
    """The torch dtype of ``dtype`` ("float32" / "bfloat16" or the torch dtypes), else a ValueError."""
    names = {"float32": torch.float32, "bfloat16": torch.bfloat16, torch.float32: torch.float32,
             torch.bfloat16: torch.bfloat16}
    if dtype not in names:
        raise ValueError(f"inference dtype must be one of {INFERENCE_DTYPES}, got {dtype!r}")
    return names[dtype]


def _spatial_and_head(features: torch.Tensor, spatial, head: nn.Linear) -> torch.Tensor:
    """ReLU of the folded spatial layer ``spatial = (bias, weight^T)`` (in its dtype), then the sigmoid
    head in float32."""
    bias, weight = spatial
    h = torch.addmm(bias, features.to(weight.dtype), weight).relu_().to(head.weight.dtype)
    return torch.sigmoid(torch.addmm(head.bias, h, head.weight.t()))


def _fold(linear: nn.Linear, norm: nn.BatchNorm1d):
    """Weight and bias of ``norm(linear(x))`` with the norm's running statistics (inference)."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return linear.weight * scale[:, None], (linear.bias - norm.running_mean) * scale + norm.bias


# -- backbone files ----------------------------------------------------------------------------------
def backbone_state(temporal: TemporalLayers, spatial_layers: dict, metadata: dict | None = None,
                   dtype=torch.float16) -> dict:
    """A plain dict of tensors for ``torch.save``: temporal layers + one spatial layer per geometry."""
    state = {"format": "esort-backbone-1", "metadata": json.dumps(metadata or {})}
    for name, tensor in temporal.state_dict().items():
        state[f"temporal.{name}"] = _cast(tensor, dtype)
    for fingerprint, spatial in spatial_layers.items():
        for name, tensor in spatial.state_dict().items():
            state[f"spatial.{fingerprint}.{name}"] = _cast(tensor, dtype)
    return state


def _cast(tensor, dtype):
    return tensor.detach().cpu().to(dtype) if tensor.is_floating_point() else tensor.detach().cpu()


def load_backbone_into(model: ESortNet, backbone: dict, fingerprint: str | None, transfer_spatial="auto") -> dict:
    """Copy a backbone's temporal layers (always) and matching spatial layer (if any) into ``model``.

    Parameters
    ----------
    model : ESortNet
        A freshly built model for the target recording.
    backbone : dict
        What :func:`backbone_state` produced (as read by ``torch.load(..., weights_only=True)``).
    fingerprint : str | None
        :func:`geometry_fingerprint` of the target recording.
    transfer_spatial : "auto" | bool, default: "auto"
        "auto"/True: copy the spatial layer stored for ``fingerprint`` when there is one; False:
        keep a random spatial layer. True raises when no stored spatial layer matches.

    Returns
    -------
    report : dict
        ``{"temporal": True, "spatial": bool, "spatial_fingerprints_available": [...]}``.
    """
    if backbone.get("format") != "esort-backbone-1":
        raise ValueError("not an E-Sort backbone file (format key 'esort-backbone-1' missing)")
    temporal_state = {key[len("temporal."):]: value.float() if value.is_floating_point() else value
                      for key, value in backbone.items() if key.startswith("temporal.")}
    model.temporal.load_state_dict(temporal_state)
    available = sorted({key.split(".")[1] for key in backbone if key.startswith("spatial.")})
    spatial_copied = False
    if transfer_spatial and fingerprint in available:
        prefix = f"spatial.{fingerprint}."
        spatial_state = {key[len(prefix):]: value.float() if value.is_floating_point() else value
                         for key, value in backbone.items() if key.startswith(prefix)}
        model.spatial.load_state_dict(spatial_state)
        spatial_copied = True
    elif transfer_spatial is True:
        raise ValueError(f"the backbone has no spatial layer for geometry {fingerprint!r} (it has {available}); "
                         "use transfer_spatial='auto' to learn a new one")
    return {"temporal": True, "spatial": spatial_copied, "spatial_fingerprints_available": available}
