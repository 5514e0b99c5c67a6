"""SortingAnalyzer extension ``compressed_waveforms``: spike waveforms stored as spike-CAE code indices.

``sorting_analyzer.compute("compressed_waveforms", model="nn32-4x64")`` takes the analyzer's
random spikes (extension ``random_spikes``), cuts each one on its unit's peak channel and the
nearest ``model.num_channels - 1`` channels (probe geometry), aligns it to the trough of the peak
channel (the local minimum within ``align_radius_samples`` of the unit's mean trough), and keeps
only the model's ``codes_per_spike`` code indices per spike (uint16) plus the per-spike channel list and
alignment shift. Waveforms are decoded on demand.

Stored data (``ext.data``): ``code_indices`` (num_random_spikes, codes_per_spike) uint16,
``channel_indices`` (num_random_spikes, C) int32 (-1 for a channel removed by a channel
selection), ``sample_shifts`` (num_random_spikes,) int16 (trough sample minus spike sample),
``sndr_db`` (num_random_spikes,) float32 (decoded against the raw snippet), ``raw_templates``
(num_units, T, num_channels) float32 (mean of the raw aligned snippets, for comparisons) and
``model_info`` (name or path, sha256, config). Waveforms are laid out like SpikeInterface's
``waveforms`` extension: ``(num_spikes, num_samples, num_channels)`` with the window of the model
(``nbefore = trough_sample``) around the aligned trough; channels outside a spike's coded
neighbourhood are 0 (they were never coded).
"""

from __future__ import annotations

import warnings

import numpy as np
from spikeinterface.core.sortinganalyzer import AnalyzerExtension

from spikeinterface_vqcompress.core import weights
from spikeinterface_vqcompress.core.errors import ModelMismatchError
from spikeinterface_vqcompress.core.codecs.spike_cae.detection import neighbour_channel_order
from spikeinterface_vqcompress.evaluation.metrics import snippet_sndr_db

_MEAN_HALF_WIDTH = 48


class ComputeCompressedWaveforms(AnalyzerExtension):
    """Random-spike waveforms compressed with a spike CAE (Wu et al. 2018): code indices only.

    Parameters
    ----------
    model : str | None, default: None
        A shipped model name (e.g. "nn32-16x64") or a weights-file path; None picks the
        shipped model for ``num_channels``.
    num_channels : int, default: 4
        Channels per snippet when ``model`` is None (4 -> "nn32-4x64-r2", 15 -> "np64-15x96",
        16 -> "nn32-16x96").
    align_radius_samples : int, default: 2
        Per-spike alignment search radius around the unit's mean trough.
    chunk_duration_s : float, default: 10.0
        Traces are read in chunks of this duration.

    Returns
    -------
    code_indices : np.ndarray
        ``(num_random_spikes, codes_per_spike)`` uint16 (``get_data()``).
    """

    extension_name = "compressed_waveforms"
    depend_on = ["random_spikes"]
    need_recording = True
    use_nodepipeline = False
    need_job_kwargs = False

    # -- parameters ---------------------------------------------------------------------------------
    def _set_params(self, model=None, num_channels: int = 4, align_radius_samples: int = 2,
                    chunk_duration_s: float = 10.0):
        if model is None:
            model = weights.default_model("spike-cae", num_channels=num_channels)
        from spikeinterface_vqcompress.core.codecs.spike_cae.model import cached_spike_cae

        spike_model = cached_spike_cae(model)[0]
        sampling_frequency = self.sorting_analyzer.sampling_frequency
        if abs(spike_model.sampling_frequency_hz - sampling_frequency) > 1e-6 * sampling_frequency:
            raise ValueError(
                f"the spike CAE was trained at {spike_model.sampling_frequency_hz} Hz but the recording is at "
                f"{sampling_frequency} Hz; resample the recording (spikeinterface.preprocessing.resample) or train "
                "a model at this rate"
            )
        if spike_model.num_channels > self.sorting_analyzer.get_num_channels():
            raise ValueError(f"the model codes {spike_model.num_channels} channels per spike but the recording has "
                             f"{self.sorting_analyzer.get_num_channels()}; use a model with fewer channels")
        return dict(model=str(model) if model is not None else getattr(spike_model, "source", None),
                    num_channels=int(spike_model.num_channels), align_radius_samples=int(align_radius_samples),
                    chunk_duration_s=float(chunk_duration_s))

    # -- model ------------------------------------------------------------------------------------------
    @property
    def spike_model(self):
        """The :class:`~spikeinterface_vqcompress.core.codecs.spike_cae.model.SpikeCAE` (loaded once, hash-checked)."""
        cached = getattr(self, "_spike_model", None)
        if cached is None:
            from spikeinterface_vqcompress.core.codecs.spike_cae.model import cached_spike_cae

            cached, _, digest = cached_spike_cae(self.params["model"])
            info = self.data.get("model_info")
            if info is not None and info.get("model_sha256") not in (None, digest):
                raise ModelMismatchError(
                    f"the spike CAE {self.params['model']!r} is not the model these codes were made with "
                    f"(sha256 {info['model_sha256'][:12]}...); recompute the extension or supply that model's file"
                )
            self._spike_model = cached
        return cached

    @property
    def nbefore(self) -> int:
        return self.spike_model.trough_sample

    @property
    def nafter(self) -> int:
        return self.spike_model.num_samples - self.spike_model.trough_sample

    # -- computation --------------------------------------------------------------------------------
    def _traces_chunks(self, spike_samples, half_before, half_after):
        """Yield ``(spike_positions, traces, start)`` per chunk of sorted spike samples."""
        recording = self.sorting_analyzer.recording
        num_total = recording.get_num_samples(segment_index=0)
        chunk = max(int(self.params["chunk_duration_s"] * recording.get_sampling_frequency()), 1)
        scaled = recording.has_scaleable_traces()
        order = np.argsort(spike_samples, kind="stable")
        sorted_samples = spike_samples[order]
        starts = np.arange(0, num_total, chunk)
        for chunk_start in starts:
            selection = np.flatnonzero((sorted_samples >= chunk_start) & (sorted_samples < chunk_start + chunk))
            if selection.size == 0:
                continue
            start = max(int(sorted_samples[selection[0]]) - half_before, 0)
            end = min(int(sorted_samples[selection[-1]]) + half_after + 1, num_total)
            traces = recording.get_traces(segment_index=0, start_frame=start, end_frame=end,
                                          return_in_uV=scaled).astype(np.float32)
            pad_before = max(half_before - int(sorted_samples[selection[0]]), 0)
            pad_after = max(int(sorted_samples[selection[-1]]) + half_after + 1 - num_total, 0)
            if pad_before or pad_after:
                traces = np.pad(traces, ((pad_before, pad_after), (0, 0)))
                start -= pad_before
            yield order[selection], traces, start

    def _run(self, verbose=False):
        analyzer = self.sorting_analyzer
        if analyzer.get_num_segments() != 1:
            raise ValueError("compressed_waveforms supports single-segment recordings only; split the segments "
                             "into separate analyzers")
        if not analyzer.recording.has_scaleable_traces():
            warnings.warn("the recording has no gain/offset: its traces are assumed to be in uV already")
        self.data.clear()
        self._spike_model = None
        self._decoded_cache = None
        model = self.spike_model
        num_units = analyzer.get_num_units()
        num_total_channels = analyzer.get_num_channels()
        locations = analyzer.get_channel_locations()
        some_spikes = analyzer.get_extension("random_spikes").get_random_spikes()
        spike_samples = some_spikes["sample_index"].astype(np.int64)
        unit_indices = some_spikes["unit_index"].astype(np.int64)
        radius = self.params["align_radius_samples"]
        num_samples, trough = model.num_samples, model.trough_sample
        half = max(_MEAN_HALF_WIDTH, num_samples + radius)

        # pass 1: mean waveform per unit -> peak channel and mean trough offset
        sums = np.zeros((num_units, 2 * half, num_total_channels))
        counts = np.zeros(num_units)
        for positions, traces, start in self._traces_chunks(spike_samples, half, half):
            local = spike_samples[positions] - start
            windows = traces[local[:, None] + np.arange(-half, half)[None, :]]  # (n, 2 half, channels)
            np.add.at(sums, unit_indices[positions], windows)
            np.add.at(counts, unit_indices[positions], 1)
        means = sums / np.maximum(counts, 1)[:, None, None]
        peak_channels = np.argmin(means.min(axis=1), axis=1)
        offsets = np.array([int(np.argmin(means[unit, :, peak_channels[unit]])) - half for unit in range(num_units)])
        offsets = np.clip(offsets, -half + trough + radius, half - num_samples - radius)
        unit_channels = np.stack([neighbour_channel_order(locations, peak_channels[unit], model.num_channels)
                                  for unit in range(num_units)])

        # pass 2: aligned snippets, encoded chunk by chunk
        num_spikes = spike_samples.size
        code_indices = np.zeros((num_spikes, model.codes_per_spike), dtype=np.uint16)
        shifts = np.zeros(num_spikes, dtype=np.int16)
        sndr = np.zeros(num_spikes, dtype=np.float32)
        raw_sums = np.zeros((num_units, num_samples, num_total_channels))
        for positions, traces, start in self._traces_chunks(spike_samples, half, half):
            units = unit_indices[positions]
            troughs = spike_samples[positions] - start + offsets[units]
            if radius > 0:
                window = troughs[:, None] + np.arange(-radius, radius + 1)[None, :]
                troughs = troughs + np.argmin(traces[window, peak_channels[units][:, None]], axis=1) - radius
            channels = unit_channels[units]
            time_grid = (troughs - trough)[:, None, None] + np.arange(num_samples)[None, None, :]
            snippets = traces[time_grid, channels[:, :, None]]  # (n, C, T)
            indices = model.encode_indices(snippets)
            decoded = model.decode_indices(indices)
            code_indices[positions] = indices.astype(np.uint16)
            shifts[positions] = (troughs + start - spike_samples[positions]).astype(np.int16)
            sndr[positions] = snippet_sndr_db(snippets, decoded)
            dense = traces[(troughs - trough)[:, None] + np.arange(num_samples)[None, :]]  # (n, T, channels)
            np.add.at(raw_sums, units, dense)
        self.data["code_indices"] = code_indices
        self.data["channel_indices"] = unit_channels[unit_indices].astype(np.int32)
        self.data["sample_shifts"] = shifts
        self.data["sndr_db"] = sndr
        self.data["raw_templates"] = (raw_sums / np.maximum(counts, 1)[:, None, None]).astype(np.float32)
        self.data["raw_template_counts"] = counts.astype(np.int64)
        from spikeinterface_vqcompress.core.codecs.spike_cae.model import model_sha256

        self.data["model_info"] = {"model": self.params["model"], "model_sha256": model_sha256(model),
                                   "config": model.config(),
                                   "bits_per_spike_fixed_length": model.bits_per_spike_fixed}

    # -- decoding -------------------------------------------------------------------------------------
    def _decoded_coded_layout(self) -> np.ndarray:
        """All random spikes decoded, ``(n, C, T)``, decoded once and cached."""
        codes = self.data["code_indices"]
        cache = getattr(self, "_decoded_cache", None)
        if cache is None or cache[0] is not codes:
            cache = (codes, self.spike_model.decode_indices(np.asarray(codes, dtype=np.int64)))
            self._decoded_cache = cache
        return cache[1]

    def _decode_rows(self, rows: np.ndarray) -> np.ndarray:
        """Dense decoded waveforms ``(len(rows), T, num_channels)`` of random-spike rows."""
        model = self.spike_model
        num_total_channels = self.sorting_analyzer.get_num_channels()
        decoded = self._decoded_coded_layout()[rows]  # (n, C, T)
        channels = np.asarray(self.data["channel_indices"][rows])
        dense = np.zeros((len(rows), model.num_samples, num_total_channels), dtype=np.float32)
        for spike in range(len(rows)):
            valid = channels[spike] >= 0
            dense[spike][:, channels[spike][valid]] = decoded[spike][valid].T
        return dense

    def _unit_rows(self, unit_id) -> np.ndarray:
        unit_index = self.sorting_analyzer.sorting.id_to_index(unit_id)
        some_spikes = self.sorting_analyzer.get_extension("random_spikes").get_random_spikes()
        return np.flatnonzero(some_spikes["unit_index"] == unit_index)

    def get_waveforms_one_unit(self, unit_id, force_dense: bool = False) -> np.ndarray:
        """Decoded waveforms of one unit, ``(num_spikes, num_samples, num_channels)`` in uV.

        Parameters
        ----------
        unit_id : int | str
        force_dense : bool, default: False
            With a sparse analyzer, return all channels instead of the unit's sparse channels.

        Returns
        -------
        np.ndarray
            float32; the model's window around each spike's aligned trough; channels the spike was
            not coded on are 0.
        """
        dense = self._decode_rows(self._unit_rows(unit_id))
        sparsity = self.sorting_analyzer.sparsity
        if sparsity is not None and not force_dense:
            return dense[:, :, sparsity.unit_id_to_channel_indices[unit_id]]
        return dense

    def get_coded_waveforms_one_unit(self, unit_id) -> tuple[np.ndarray, np.ndarray]:
        """Decoded snippets in the model's layout ``(n, C, T)`` and their channel indices ``(n, C)``."""
        rows = self._unit_rows(unit_id)
        return self._decoded_coded_layout()[rows].copy(), np.asarray(self.data["channel_indices"][rows])

    def get_templates(self, decoded: bool = True, unit_ids=None) -> np.ndarray:
        """Average waveforms ``(num_units, num_samples, num_channels)`` (dense), decoded or raw.

        The raw templates are the means of the raw aligned snippets seen at compute time; the decoded
        ones are the means of the decoded waveforms of the same spikes.
        """
        unit_ids = self.sorting_analyzer.unit_ids if unit_ids is None else unit_ids
        if not decoded:
            indices = self.sorting_analyzer.sorting.ids_to_indices(unit_ids)
            return np.asarray(self.data["raw_templates"])[indices]
        templates = np.zeros((len(unit_ids), self.spike_model.num_samples, self.sorting_analyzer.get_num_channels()),
                             dtype=np.float32)
        for position, unit_id in enumerate(unit_ids):
            rows = self._unit_rows(unit_id)
            if rows.size:
                templates[position] = self._decode_rows(rows).mean(axis=0)
        return templates

    def get_unit_sndr(self) -> dict:
        """Mean per-spike SNDR in dB (decoded vs raw snippet on the coded channels) of each unit."""
        sndr = np.asarray(self.data["sndr_db"])
        values = {}
        for unit_id in self.sorting_analyzer.unit_ids:
            rows = self._unit_rows(unit_id)
            values[unit_id] = float(sndr[rows].mean()) if rows.size else float("nan")
        return values

    def get_template_sndr(self) -> dict:
        """SNDR in dB of each unit's decoded template against its raw template, on the unit's coded channels."""
        raw = self.get_templates(decoded=False)
        decoded = self.get_templates(decoded=True)
        channel_indices = np.asarray(self.data["channel_indices"])
        values = {}
        for position, unit_id in enumerate(self.sorting_analyzer.unit_ids):
            rows = self._unit_rows(unit_id)
            channels = np.unique(channel_indices[rows])
            channels = channels[channels >= 0]
            if rows.size == 0 or channels.size == 0 or not np.all(np.isfinite(raw[position])):
                values[unit_id] = float("nan")
                continue
            values[unit_id] = float(snippet_sndr_db(raw[position][None, :, channels], decoded[position][None, :, channels])[0])
        return values

    def get_compression_info(self) -> dict:
        """Bits per stored spike (fixed-length indices) and the ratio against the raw int16 snippet."""
        model = self.spike_model
        bits = model.bits_per_spike_fixed
        return {"bits_per_spike": bits, "ratio_vs_int16_snippet": model.num_channels * model.num_samples * 16 / bits,
                "num_spikes": int(np.asarray(self.data["code_indices"]).shape[0])}

    def _get_data(self):
        return self.data["code_indices"]

    # -- unit and channel operations ------------------------------------------------------------------
    def _select_units_extension_data(self, unit_ids):
        some_spikes = self.sorting_analyzer.get_extension("random_spikes").get_random_spikes()
        keep_unit_indices = self.sorting_analyzer.sorting.ids_to_indices(unit_ids)
        keep = np.isin(some_spikes["unit_index"], keep_unit_indices)
        new_data = {key: np.asarray(self.data[key])[keep] for key in ("code_indices", "channel_indices",
                                                                       "sample_shifts", "sndr_db")}
        new_data["raw_templates"] = np.asarray(self.data["raw_templates"])[keep_unit_indices]
        new_data["raw_template_counts"] = np.asarray(self.data["raw_template_counts"])[keep_unit_indices]
        new_data["model_info"] = dict(self.data["model_info"])
        return new_data

    def _select_channels_extension_data(self, channel_ids):
        old_ids = list(self.sorting_analyzer.channel_ids)
        keep = np.array([old_ids.index(channel_id) for channel_id in channel_ids])
        mapping = np.full(len(old_ids), -1, dtype=np.int32)
        mapping[keep] = np.arange(keep.size, dtype=np.int32)
        channels = np.asarray(self.data["channel_indices"])
        new_data = dict(self.data)
        new_data["channel_indices"] = np.where(channels >= 0, mapping[np.maximum(channels, 0)], -1).astype(np.int32)
        new_data["raw_templates"] = np.asarray(self.data["raw_templates"])[:, :, keep]
        return new_data

    def _merge_extension_data(self, merge_unit_groups, new_unit_ids, new_sorting_analyzer, keep_mask=None,
                              verbose=False, **job_kwargs):
        per_spike = {key: np.asarray(self.data[key]) for key in ("code_indices", "channel_indices",
                                                                 "sample_shifts", "sndr_db")}
        if keep_mask is not None:
            spike_indices = self.sorting_analyzer.get_extension("random_spikes").get_data()
            valid = keep_mask[spike_indices]
            per_spike = {key: value[valid] for key, value in per_spike.items()}
        old_ids = list(self.sorting_analyzer.unit_ids)
        raw = np.asarray(self.data["raw_templates"])
        counts = np.asarray(self.data["raw_template_counts"]).astype(np.float64)
        new_raw = np.zeros((len(new_sorting_analyzer.unit_ids),) + raw.shape[1:], dtype=np.float32)
        new_counts = np.zeros(len(new_sorting_analyzer.unit_ids), dtype=np.int64)
        groups = {new_id: list(group) for new_id, group in zip(new_unit_ids, merge_unit_groups)}
        for position, unit_id in enumerate(new_sorting_analyzer.unit_ids):
            members = groups.get(unit_id, [unit_id])
            indices = [old_ids.index(member) for member in members]
            weights = counts[indices]
            total = weights.sum()
            new_counts[position] = int(total)
            if total > 0:
                new_raw[position] = np.tensordot(weights / total, raw[indices], axes=1)
        per_spike["raw_templates"] = new_raw
        per_spike["raw_template_counts"] = new_counts
        per_spike["model_info"] = dict(self.data["model_info"])
        return per_spike

    def _split_extension_data(self, split_units, new_unit_ids, new_sorting_analyzer, verbose=False, **job_kwargs):
        # per-spike data is unchanged (the random spikes keep their order); the raw templates of the new
        # units are re-estimated from the decoded waveforms' split shares only when the recording is there
        new_data = {key: np.asarray(self.data[key]).copy() for key in ("code_indices", "channel_indices",
                                                                       "sample_shifts", "sndr_db")}
        old_ids = list(self.sorting_analyzer.unit_ids)
        raw = np.asarray(self.data["raw_templates"])
        counts = np.asarray(self.data["raw_template_counts"])
        new_ids = list(new_sorting_analyzer.unit_ids)
        new_raw = np.full((len(new_ids),) + raw.shape[1:], np.nan, dtype=np.float32)
        new_counts = np.zeros(len(new_ids), dtype=np.int64)
        for position, unit_id in enumerate(new_ids):
            if unit_id in old_ids:
                new_raw[position] = raw[old_ids.index(unit_id)]
                new_counts[position] = counts[old_ids.index(unit_id)]
        new_data["raw_templates"] = new_raw  # NaN for split units: raw snippets are not kept
        new_data["raw_template_counts"] = new_counts
        new_data["model_info"] = dict(self.data["model_info"])
        return new_data


compute_compressed_waveforms = ComputeCompressedWaveforms.function_factory()


