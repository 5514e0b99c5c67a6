"""The footprint map: every spike of a unit sent on the same channels (issue 28, item 3).

A spike codec sends each spike on the ``C`` channels nearest to the channel it names (its *centre*),
and the decoder puts the synthesised background everywhere else. With the centre at each spike's own
peak channel, a unit whose amplitude is about as large on two or three channels (a cell between
columns) is centred on one channel for some spikes and on another for the rest: its outer channels
are cut differently from one spike to the next, and sorters split it into extra units. Measured on
the tuning recording (``benchmarks/spike_frontend.py --experiment decomposition``, tridesclous2 seeds
0-2): the recorded noise with the spikes kept only inside the 16-channel windows gives 32.7 units
(9.7 false positive; raw 26.3 / 5.3); centred on each unit's ground-truth template peak, 27.0 (5.3),
with accuracy 0.915 against 0.843.

The map approximates that without ground truth, on the encoder only. Spikes of the first seconds of
the recording are clustered by the shape of their amplitude across channels (peak-to-peak of the
band-passed trace around the trough, over the spike's ``2 C`` nearest channels, scaled to unit
length; spherical k-means, one cluster per channel). Each cluster keeps its direction (its largest
entries, sparse) and the channel most of its members peak on (clusters within cosine
:data:`MERGE_COSINE` vote together). A spike is then centred on
its closest cluster's channel, unless the match is poor (a unit the map never saw) or the spike is
weak there (under :data:`MIN_FRACTION` of its own peak), where it keeps its own peak channel.

The decoder needs nothing of this: the centre channel of every spike is sent anyway. The map lives
in the codec's configuration (a few hundred numbers), so parallel workers encode with the same one.
An implant learns it during its first seconds, as the codebooks are learned.

Measured on the same recording: the cut with the learned map gives 27.0 units (5.7 false positive),
raw's level, with accuracy 0.868 (22 % of the spikes move, some off the channel that holds most of
their energy); inside ``spike-vq`` at residual step 1 it removes 4.3 false-positive units for 0.042
accuracy, and at step 3 it changes nothing. It is therefore an option (``footprint="learned"``),
not the default.
"""

from __future__ import annotations

import numpy as np

#: Amplitude window around the trough, as fractions of the snippet (0.3 ms before to 0.6 ms after the
#: trough in a 3.2-ms snippet): the peak-to-peak of the band-passed trace in it.
AMPLITUDE_BEFORE = 0.3 / 3.2
AMPLITUDE_AFTER = 0.6 / 3.2
#: Entries of a cluster's direction that are kept.
TEMPLATE_ENTRIES = 8
#: A spike keeps its own peak channel when its best cosine with a cluster is below this...
MIN_SCORE = 0.5
#: ...or when its amplitude on the cluster's channel is below this fraction of its largest amplitude.
MIN_FRACTION = 0.6
#: Clusters at least this close (cosine of their directions) share a centre channel.
MERGE_COSINE = 0.99
#: Spikes the map is learned from, at most (evenly spaced among those detected).
MAX_LEARNING_SPIKES = 20000


def amplitude_window(snippet_samples: int) -> tuple[int, int]:
    """Samples before and after the trough that :func:`spike_amplitudes` looks at, for a snippet length."""
    return (max(int(round(AMPLITUDE_BEFORE * snippet_samples)), 1), max(int(round(AMPLITUDE_AFTER * snippet_samples)), 1))


def spike_amplitudes(traces: np.ndarray, times: np.ndarray, neighbourhoods: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """Peak-to-peak amplitude of each spike on its neighbourhood's channels, 0 elsewhere.

    Parameters
    ----------
    traces : np.ndarray
        ``(num_samples, num_channels)`` band-passed chunk (offsets removed).
    times : np.ndarray
        Trough sample of each spike.
    neighbourhoods : np.ndarray
        ``(n, K)`` channels of each spike (its peak channel's ``K`` nearest).
    window : tuple of int
        Samples before and after the trough (:func:`amplitude_window`).

    Returns
    -------
    np.ndarray
        float32 ``(n, num_channels)``.
    """
    num_samples, num_channels = traces.shape
    before, after = window
    times = np.asarray(times, dtype=np.int64)
    amplitudes = np.zeros((len(times), num_channels), dtype=np.float32)
    if len(times) == 0:
        return amplitudes
    index = np.clip(times[:, None] + np.arange(-before, after + 1)[None, :], 0, num_samples - 1)  # (n, W)
    windows = traces[index[:, :, None], neighbourhoods[:, None, :]].astype(np.float32)  # (n, W, K)
    rows = np.repeat(np.arange(len(times)), neighbourhoods.shape[1])
    amplitudes[rows, neighbourhoods.reshape(-1)] = (windows.max(axis=1) - windows.min(axis=1)).reshape(-1)
    return amplitudes


def _unit_rows(amplitudes: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(amplitudes, axis=1, keepdims=True)
    return amplitudes / np.maximum(norms, 1e-12)


def learn_footprint_map(amplitudes: np.ndarray, num_clusters: int, peak_channels: np.ndarray | None = None, seed: int = 0,
                        iterations: int = 30,
                        merge_cosine: float = MERGE_COSINE) -> dict:
    """Cluster spikes by the direction of their amplitude vector (spherical k-means, k-means++ start).

    Parameters
    ----------
    amplitudes : np.ndarray
        ``(n, num_channels)`` from :func:`spike_amplitudes`.
    num_clusters : int
        Clusters wanted (fewer when there are fewer spikes).
    peak_channels : np.ndarray | None, default: None
        The detector's peak channel of each spike: a cluster's centre is the one most of its spikes
        peak on (None: each amplitude vector's largest entry).
    seed : int, default: 0
        Seed of the k-means++ start (the map is the same at every run).
    iterations : int, default: 30
        Lloyd iterations at most.
    merge_cosine : float, default: MERGE_COSINE
        Clusters whose directions are at least this close share one centre channel (the one most of
        their members peak on): k-means cuts a unit whose peak alternates between two channels along
        exactly that jitter.

    Returns
    -------
    dict
        ``{"channels": [c, ...], "templates": [[[channel, weight], ...], ...]}``: each cluster's centre
        channel and its direction's :data:`TEMPLATE_ENTRIES` largest entries (weights rounded to 3
        decimals). Empty lists when there is no spike.
    """
    amplitudes = np.asarray(amplitudes, dtype=np.float64)
    peaks = np.argmax(amplitudes, axis=1) if peak_channels is None else np.asarray(peak_channels, dtype=np.int64)
    if len(amplitudes) > MAX_LEARNING_SPIKES:
        chosen = np.linspace(0, len(amplitudes) - 1, MAX_LEARNING_SPIKES).astype(np.int64)
        amplitudes, peaks = amplitudes[chosen], peaks[chosen]
    rows = _unit_rows(amplitudes)
    k = int(min(num_clusters, len(rows)))
    if k == 0:
        return {"channels": [], "templates": []}
    centres, labels = _spherical_kmeans(rows, k, np.random.default_rng(seed), iterations)
    used = [cluster for cluster in range(k) if np.any(labels == cluster)]
    # clusters pointing the same way (one unit cut in two along its own jitter) share a centre channel
    group = {cluster: cluster for cluster in used}

    def root(cluster):
        while group[cluster] != cluster:
            cluster = group[cluster]
        return cluster

    similarity = centres[used] @ centres[used].T
    for i, j in zip(*np.nonzero(np.triu(similarity >= merge_cosine, k=1))):
        group[root(used[i])] = root(used[j])
    channels, templates = [], []
    for cluster in used:
        members = np.isin(labels, [other for other in used if root(other) == root(cluster)])
        # the channel most of its spikes peak on (the peak of their mean amplitude lands beside the units'
        # template peaks more often: on the tuning recording 67-82 % of the spikes against 84-90 %)
        channels.append(int(np.bincount(peaks[members], minlength=amplitudes.shape[1]).argmax()))
        top = np.argsort(-centres[cluster], kind="stable")[:TEMPLATE_ENTRIES]
        templates.append([[int(channel), round(float(centres[cluster, channel]), 3)] for channel in top if centres[cluster, channel] > 0])
    return {"channels": channels, "templates": templates}


def _spherical_kmeans(rows: np.ndarray, k: int, rng, iterations: int):
    """Spherical k-means of unit rows from a k-means++ start (cosine distance): ``(centres, labels)``."""
    centres = [rows[rng.integers(len(rows))]]
    distance = np.maximum(1.0 - rows @ centres[0], 0.0)
    for _ in range(1, k):
        total = distance.sum()
        pick = rng.choice(len(rows), p=distance / total) if total > 0 else rng.integers(len(rows))
        centres.append(rows[pick])
        distance = np.minimum(distance, np.maximum(1.0 - rows @ rows[pick], 0.0))
    centres = np.array(centres)
    labels = np.full(len(rows), -1)
    for _ in range(iterations):
        new = np.argmax(rows @ centres.T, axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for cluster in range(k):
            members = rows[labels == cluster]
            if len(members):
                centres[cluster] = _unit_rows(members.sum(axis=0, keepdims=True))[0]
    return centres, labels


def check_footprint_map(footprint_map, num_channels: int | None = None) -> dict | None:
    """A footprint map as JSON values, checked (``ValueError`` naming the problem), or None."""
    if footprint_map is None:
        return None
    try:
        channels = [int(channel) for channel in footprint_map["channels"]]
        templates = [[[int(channel), float(weight)] for channel, weight in template] for template in footprint_map["templates"]]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"footprint_map must be {{'channels': [c, ...], 'templates': [[[channel, weight], ...], ...]}} "
                         f"as learn_footprint_map returns it ({error}); pass footprint_map=None to centre each spike on its peak") from None
    if len(channels) != len(templates):
        raise ValueError(f"footprint_map has {len(channels)} channels for {len(templates)} templates: one each")
    used = channels + [channel for template in templates for channel, _ in template]
    if used and (min(used) < 0 or (num_channels is not None and max(used) >= num_channels)):
        raise ValueError(f"footprint_map names channel {max(used) if min(used) >= 0 else min(used)}, outside the "
                         f"{num_channels} channels of the recording: learn it on this recording (footprint_map=None "
                         f"and footprint='learned')")
    return {"channels": channels, "templates": templates}


def apply_footprint_map(footprint_map: dict, amplitudes: np.ndarray, peak_channels: np.ndarray) -> np.ndarray:
    """Each spike's centre channel: its closest cluster's, or its own peak channel (see the module).

    Parameters
    ----------
    footprint_map : dict
        From :func:`learn_footprint_map`.
    amplitudes : np.ndarray
        ``(n, num_channels)`` from :func:`spike_amplitudes`.
    peak_channels : np.ndarray
        ``(n,)`` the detector's peak channels.

    Returns
    -------
    np.ndarray
        int64 ``(n,)`` centre channels.
    """
    peak_channels = np.asarray(peak_channels, dtype=np.int64)
    if len(peak_channels) == 0 or not footprint_map["channels"]:
        return peak_channels.copy()
    num_channels = amplitudes.shape[1]
    directions = np.zeros((len(footprint_map["templates"]), num_channels), dtype=np.float64)
    for cluster, template in enumerate(footprint_map["templates"]):
        for channel, weight in template:
            directions[cluster, channel] = weight
    directions = _unit_rows(directions)
    scores = _unit_rows(np.asarray(amplitudes, dtype=np.float64)) @ directions.T  # (n, clusters) cosines
    best = np.argmax(scores, axis=1)
    centres = np.asarray(footprint_map["channels"], dtype=np.int64)[best]
    rows = np.arange(len(peak_channels))
    keep = (scores[rows, best] >= MIN_SCORE) & (amplitudes[rows, centres] >= MIN_FRACTION * amplitudes.max(axis=1))
    return np.where(keep, centres, peak_channels)
