"""E-Sort training sets and training loops (numpy + torch; no SpikeInterface here).

A training set is a recording's normalised traces held in memory plus a list of window centres and
their multi-unit labels. Label ``y[i, k] = 1`` when unit k has a spike within
``+/- label_tolerance_samples`` of centre i. A label is *known* only where every spike of the unit
is known: unit k's labelled period ends at ``known_until[k]`` (for "the first N spikes per unit",
just after its N-th spike); the BCE loss is masked outside it, so windows of the unlabelled rest of
the recording never count as negatives.

Centres drawn per training set: every labelled spike shifted by each offset in
``[-tolerance, tolerance]`` (positives), every labelled spike shifted by ``tolerance + 1 ..
near_miss_samples`` either way (hard negatives: teach the network *where* a spike is centred) and
random centres in the labelled period (mostly background).

Synthetic windows (``TrainingSet.synthetic``, used by ``fine_tune(synthetic_fraction=...)``): with a
few labelled spikes per unit, the positives are a few waveforms seen on a few noise samples. A
synthetic window adds a unit's mean waveform (the average of its labelled spikes, scaled at random
and shifted by up to ``near_miss_samples``) to a random background window of the labelled period,
so every epoch shows the unit on fresh noise and fresh overlapping spikes. It is positive for that
unit when the shift is within the tolerance (a near miss otherwise), and keeps the background
window's own labels for the other units.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch.nn import functional as F

from spikeinterface_vqcompress.esort.model import LABEL_TOLERANCE_SAMPLES, WINDOW_NUM_SAMPLES, ESortNet, SpatialLayer, TemporalLayers


class TrainingSet:
    """Windows (as centres into in-memory traces) and masked multi-unit labels of one recording.

    Parameters
    ----------
    traces : np.ndarray
        ``(T, C)`` float32 normalised traces of the labelled period (or more).
    spike_trains : list of np.ndarray
        Per unit, the sample indices (into ``traces``) of its labelled spikes.
    known_until : array-like of int
        Per unit, the end (exclusive) of the period in which ``spike_trains[k]`` holds *every*
        spike of unit k.
    window_num_samples : int, default: 60
    tolerance_samples : int, default: 5
        A window is positive for unit k when a spike of k lies within this many samples of its centre.
    near_miss_samples : int, default: 20
        Hard negatives are spikes shifted by ``tolerance + 1 .. near_miss_samples`` samples.
    positives_per_spike : int | None, default: None
        Shifted copies of each labelled spike used as positives (random offsets within the
        tolerance); None for every offset (``2 * tolerance + 1``).
    near_misses_per_spike : int, default: 6
        Hard negatives per labelled spike (random offsets beyond the tolerance).
    random_per_spike : float, default: 8.0
        Random background centres per labelled spike (at least ``min_random`` in all).
    min_random : int, default: 2000
    max_spikes : int, default: 3000
        At most this many labelled spikes (chosen at random, every unit kept) make windows, so that
        fine-tuning on long label periods stays short.
    max_spikes_per_unit : int | None, default: None
        At most this many labelled spikes of each unit (chosen at random) make windows: a label
        sorter's big units then do not outnumber its small ones. None: no per-unit cap. Labels stay
        complete either way (every labelled spike still marks its windows positive).
    seed : int, default: 0
    """

    def __init__(self, traces, spike_trains, known_until, window_num_samples=WINDOW_NUM_SAMPLES,
                 tolerance_samples=LABEL_TOLERANCE_SAMPLES, near_miss_samples=20, positives_per_spike=None,
                 near_misses_per_spike=6, random_per_spike=8.0, min_random=2000, max_spikes=3000,
                 max_spikes_per_unit=None, seed=0):
        traces = np.ascontiguousarray(traces, dtype=np.float32)
        if traces.ndim != 2:
            raise ValueError(f"traces must be (num_samples, num_channels), got shape {traces.shape}")
        self.num_samples, self.num_channels = traces.shape
        self.window_num_samples = int(window_num_samples)
        self.half_window = self.window_num_samples // 2
        self.tolerance = int(tolerance_samples)
        self.num_units = len(spike_trains)
        if self.num_units == 0:
            raise ValueError("no unit to train on: the label sorting has no unit with labelled spikes")
        self.traces = torch.from_numpy(traces)
        low, high = self.half_window, self.num_samples - (self.window_num_samples - self.half_window)
        self.known_until = np.minimum(np.asarray(known_until, dtype=np.int64), high)
        self.spike_trains = [np.sort(np.asarray(train, dtype=np.int64)) for train in spike_trains]
        rng = np.random.default_rng(seed)

        labelled = [train[(train >= low) & (train < high)] for train in self.spike_trains]
        self.num_labelled_spikes = np.array([len(t) for t in labelled])
        if max_spikes_per_unit is not None:
            if int(max_spikes_per_unit) < 1:
                raise ValueError(f"max_spikes_per_unit must be >= 1 or None, got {max_spikes_per_unit}")
            labelled = [np.sort(rng.choice(t, size=int(max_spikes_per_unit), replace=False))
                        if len(t) > max_spikes_per_unit else t for t in labelled]
        spikes = np.concatenate(labelled) if any(len(t) for t in labelled) else np.zeros(0, dtype=np.int64)
        if len(spikes) > max_spikes:  # keep every unit: draw with weights favouring small units
            owner = np.concatenate([np.full(len(t), k) for k, t in enumerate(labelled)])
            counts = np.bincount(owner, minlength=self.num_units).astype(float)
            weights = 1.0 / counts[owner]
            spikes = rng.choice(spikes, size=max_spikes, replace=False, p=weights / weights.sum())
        positive_offsets = np.arange(-self.tolerance, self.tolerance + 1)
        if positives_per_spike is None or positives_per_spike >= len(positive_offsets):
            positives = (spikes[:, None] + positive_offsets[None, :]).ravel()
        else:
            positives = (spikes[:, None] + rng.choice(positive_offsets, size=(len(spikes), positives_per_spike))).ravel()
        miss = np.arange(self.tolerance + 1, int(near_miss_samples) + 1)
        near_offsets = np.concatenate([-miss, miss])
        near = (spikes[:, None] + rng.choice(near_offsets, size=(len(spikes), near_misses_per_spike))).ravel()
        centres = [positives, near]
        period_end = int(max(self.known_until.max(), low + 1))
        num_random = max(int(min_random), int(random_per_spike * len(spikes)))
        centres.append(rng.integers(low, period_end, size=num_random))
        centres = np.concatenate(centres)
        centres = centres[(centres >= low) & (centres < high)]
        self.centres = centres
        self.labels, self.mask = self.label(centres)
        self.num_window_spikes = np.array([len(t) for t in labelled])
        self.near_miss_samples = int(near_miss_samples)
        self._templates(labelled, low, high)

    def _templates(self, labelled, low, high):
        """Per unit, the mean of its labelled windows, ``near_miss_samples`` wider on each side."""
        margin = self.near_miss_samples
        width = self.window_num_samples + 2 * margin
        self.templates = torch.zeros((self.num_units, self.num_channels, width))
        self.template_units = []
        for unit, train in enumerate(labelled):
            starts = train - self.half_window - margin
            starts = starts[(starts >= 0) & (starts + width <= self.num_samples)]
            if len(starts):
                positions = torch.from_numpy(starts)[:, None] + torch.arange(width)[None, :]
                self.templates[unit] = self.traces[positions].mean(dim=0).t()
                self.template_units.append(unit)
        self.template_units = np.asarray(self.template_units, dtype=np.int64)
        # background centres: the labelled period (where the labels of the other units are known)
        self._background_high = int(min(max(self.known_until.max(), low + 1), high))
        self._background_low = low

    def synthetic(self, num_windows, rng, amplitude_jitter=0.2, positive_fraction=0.5):
        """``(windows, labels, mask)`` of ``num_windows`` synthetic windows (see the module docstring).

        Parameters
        ----------
        num_windows : int
        rng : np.random.Generator
        amplitude_jitter : float, default: 0.2
            The mean waveform is scaled by a random factor in ``[1 - a, 1 + a]``.
        positive_fraction : float, default: 0.5
            Share of the windows whose shift lies within the tolerance (positives); the others are
            shifted by ``tolerance + 1 .. near_miss_samples`` (near misses).
        """
        if not len(self.template_units):
            raise ValueError("no unit has a labelled spike far enough from the edges to make synthetic windows")
        units = rng.choice(self.template_units, size=num_windows)
        positive = rng.random(num_windows) < positive_fraction
        within = rng.integers(-self.tolerance, self.tolerance + 1, size=num_windows)
        beyond = rng.integers(self.tolerance + 1, self.near_miss_samples + 1, size=num_windows)
        beyond *= rng.choice([-1, 1], size=num_windows)
        shifts = np.where(positive, within, beyond)
        centres = rng.integers(self._background_low, self._background_high, size=num_windows)
        starts = torch.from_numpy(centres - self.half_window)
        positions = starts[:, None] + torch.arange(self.window_num_samples)[None, :]
        windows = self.traces[positions].permute(0, 2, 1)
        # a spike at offset +s from the centre: the template window starts s samples earlier; the
        # windows of every start are a view (unfold), so this is one gather of (C, W) blocks, 5x
        # faster than indexing each sample
        template_windows = self.templates.unfold(2, self.window_num_samples, 1)  # (K, C, starts, W), no copy
        waveforms = template_windows[torch.from_numpy(units), :, torch.from_numpy(self.near_miss_samples - shifts)]
        scale = 1 + amplitude_jitter * (2 * torch.rand(num_windows, 1, 1) - 1)
        windows = windows + scale * waveforms
        labels, mask = self.label(centres)
        rows = np.arange(num_windows)
        labels[rows, units] = np.maximum(labels[rows, units], positive.astype(np.float32))
        mask[rows, units] = 1.0
        return windows, torch.from_numpy(labels), torch.from_numpy(mask)

    def label(self, centres):
        """``(labels, mask)``, both ``(N, K)`` float32, for window centres ``centres``."""
        labels = np.zeros((len(centres), self.num_units), dtype=np.float32)
        mask = np.zeros_like(labels)
        for unit, train in enumerate(self.spike_trains):  # a loop over units, vectorised over windows
            if len(train):
                position = np.searchsorted(train, centres - self.tolerance, side="left")
                following = train[np.minimum(position, len(train) - 1)]
                labels[:, unit] = (position < len(train)) & (following <= centres + self.tolerance)
            mask[:, unit] = centres + self.tolerance < self.known_until[unit]
        return labels, mask

    def windows(self, indices) -> torch.Tensor:
        """``(B, C, W)`` windows for the given rows of ``self.centres``."""
        starts = torch.from_numpy(self.centres[indices] - self.half_window)
        positions = starts[:, None] + torch.arange(self.window_num_samples)[None, :]
        return self.traces[positions].permute(0, 2, 1)

    def __len__(self):
        return len(self.centres)


def masked_bce(logits, labels, mask):
    """Binary cross-entropy averaged over the known (mask = 1) labels."""
    loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return (loss * mask).sum() / mask.sum().clamp_min(1.0)


def _batches(num_items, batch_size, rng):
    order = rng.permutation(num_items)
    for start in range(0, num_items, batch_size):
        yield order[start:start + batch_size]


def fine_tune(model: ESortNet, training_set: TrainingSet, epochs: int = 30, batch_size: int = 256,
              learning_rate: float = 1e-3, backbone_learning_rate: float | None = None,
              amplitude_jitter: float = 0.1, synthetic_fraction: float = 0.0, max_steps: int | None = None,
              device="cpu", seed: int = 0, verbose: bool = False) -> dict:
    """Train ``model`` (typically a new head on a pretrained backbone) on one training set.

    Parameters
    ----------
    model : ESortNet
        The network to train, in place.
    training_set : TrainingSet
    epochs : int, default: 30
        Passes over the training set's windows (the last one cut short by ``max_steps``).
    batch_size : int, default: 256
    learning_rate : float, default: 1e-3
        Adam learning rate of the head.
    backbone_learning_rate : float | None, default: None
        Learning rate of the temporal and spatial layers; None for ``learning_rate``; 0 freezes them.
    amplitude_jitter : float, default: 0.1
        Each window is scaled by a random factor in ``[1 - a, 1 + a]`` (augmentation).
    synthetic_fraction : float, default: 0.0
        Each batch gets ``synthetic_fraction * batch_size`` synthetic windows besides its real ones
        (:meth:`TrainingSet.synthetic`: a unit's mean labelled waveform on a random background window).
    max_steps : int | None, default: None
        At most this many optimiser steps (batches) in all, whatever the number of windows: bounds
        the fine-tuning time when the label sorter labelled many spikes. None: ``epochs`` full passes.
    device : str | torch.device, default: "cpu"
    seed : int, default: 0
    verbose : bool, default: False

    Returns
    -------
    history : dict
        ``{"loss": [...per epoch], "training_time_s": float, "num_windows": int, "num_steps": int}``.
    """
    if max_steps is not None and int(max_steps) < 1:
        raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    device = torch.device(device)
    model.to(device).train()
    backbone_learning_rate = learning_rate if backbone_learning_rate is None else backbone_learning_rate
    groups = [{"params": model.head.parameters(), "lr": learning_rate}]
    backbone = list(model.temporal.parameters()) + list(model.spatial.parameters())
    if backbone_learning_rate > 0:
        groups.append({"params": backbone, "lr": backbone_learning_rate})
    else:
        for parameter in backbone:
            parameter.requires_grad_(False)
    optimizer = torch.optim.Adam(groups)
    labels = torch.from_numpy(training_set.labels)
    mask = torch.from_numpy(training_set.mask)
    if synthetic_fraction < 0:
        raise ValueError(f"synthetic_fraction must be >= 0, got {synthetic_fraction}")
    num_synthetic = int(round(synthetic_fraction * batch_size))
    history = {"loss": []}
    steps, step_budget = 0, np.inf if max_steps is None else int(max_steps)
    t0 = time.perf_counter()
    for epoch in range(int(epochs)):
        if steps >= step_budget:
            break
        total, count = 0.0, 0
        for indices in _batches(len(training_set), batch_size, rng):
            if steps >= step_budget:
                break
            if len(indices) < 2:  # BatchNorm needs two windows
                continue
            steps += 1
            windows = training_set.windows(indices)
            if amplitude_jitter:
                windows = windows * (1 + amplitude_jitter * (2 * torch.rand(len(indices), 1, 1) - 1))
            batch_labels, batch_mask = labels[indices], mask[indices]
            if num_synthetic:
                extra, extra_labels, extra_mask = training_set.synthetic(num_synthetic, rng)
                windows = torch.cat([windows, extra])
                batch_labels = torch.cat([batch_labels, extra_labels])
                batch_mask = torch.cat([batch_mask, extra_mask])
            logits = model(windows.to(device))
            loss = masked_bce(logits, batch_labels.to(device), batch_mask.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(indices)
            count += len(indices)
        history["loss"].append(total / max(count, 1))
        if verbose and (epoch % 10 == 0 or epoch == epochs - 1):
            print(f"epoch {epoch + 1}/{epochs}: loss {history['loss'][-1]:.4f}", flush=True)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    model.eval()
    history["training_time_s"] = time.perf_counter() - t0
    history["num_windows"] = len(training_set)
    history["num_steps"] = steps
    return history


def pretrain(training_sets: list[TrainingSet], fingerprints: list[str], steps: int = 3000, batch_size: int = 256,
             learning_rate: float = 1e-3, amplitude_jitter: float = 0.1, seed: int = 0, device="cpu",
             verbose: bool = False, log_every: int = 250):
    """Pretrain shared temporal layers and one spatial layer per probe geometry on several recordings.

    Each training set gets its own head (thrown away afterwards). Steps cycle through the training
    sets; one step is one batch of one training set.

    Parameters
    ----------
    training_sets : list of TrainingSet
    fingerprints : list of str
        The probe geometry fingerprint of each training set (see ``geometry_fingerprint``).
    steps : int, default: 3000
    batch_size, learning_rate, amplitude_jitter, seed, device, verbose
        As in :func:`fine_tune`.
    log_every : int, default: 250

    Returns
    -------
    temporal : TemporalLayers
    spatial_layers : dict
        ``{fingerprint: SpatialLayer}``.
    history : dict
    """
    if len(training_sets) != len(fingerprints):
        raise ValueError("give one fingerprint per training set")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    device = torch.device(device)
    window = training_sets[0].window_num_samples
    temporal = TemporalLayers(window)
    spatial_layers = {}
    models = []
    for training_set, fingerprint in zip(training_sets, fingerprints):
        if training_set.window_num_samples != window:
            raise ValueError("all training sets must use the same window length")
        if fingerprint not in spatial_layers:
            spatial_layers[fingerprint] = SpatialLayer(training_set.num_channels)
        model = ESortNet(training_set.num_channels, training_set.num_units, window)
        model.temporal = temporal
        model.spatial = spatial_layers[fingerprint]
        models.append(model.to(device).train())
    parameters = {id(p): p for model in models for p in model.parameters()}
    optimizer = torch.optim.Adam(parameters.values(), lr=learning_rate)
    labels = [torch.from_numpy(s.labels) for s in training_sets]
    masks = [torch.from_numpy(s.mask) for s in training_sets]
    history = {"step": [], "loss": []}
    t0 = time.perf_counter()
    running = 0.0
    for step in range(int(steps)):
        which = step % len(training_sets)
        training_set = training_sets[which]
        indices = rng.integers(0, len(training_set), size=batch_size)
        windows = training_set.windows(indices)
        if amplitude_jitter:
            windows = windows * (1 + amplitude_jitter * (2 * torch.rand(len(indices), 1, 1) - 1))
        logits = models[which](windows.to(device))
        loss = masked_bce(logits, labels[which][indices].to(device), masks[which][indices].to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running += float(loss.detach())
        if (step + 1) % log_every == 0:
            history["step"].append(step + 1)
            history["loss"].append(running / log_every)
            if verbose:
                print(f"step {step + 1}/{steps}: loss {running / log_every:.4f} "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
            running = 0.0
    history["training_time_s"] = time.perf_counter() - t0
    temporal.eval()
    for layer in spatial_layers.values():
        layer.eval()
    return temporal.cpu(), {key: layer.cpu() for key, layer in spatial_layers.items()}, history
