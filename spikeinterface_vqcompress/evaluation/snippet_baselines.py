"""Classic spike-snippet coders for rate-distortion comparisons with the spike CAE, at real bytes.

Three coders, each fitted on training snippets ``(n, C, T)`` in uV, each producing real bytes:

- :class:`PCASnippetCoder`: projection on the first ``num_components`` principal components of the
  training snippets (flattened), coefficients quantised with a uniform step and entropy-coded.
- :class:`DWTSnippetCoder`: orthogonal wavelet transform per channel (PyWavelets, periodised, so
  ``T`` coefficients per channel), the ``keep`` largest-magnitude coefficients of each snippet are
  kept; their positions are sent as a significance map (one binary symbol per coefficient slot,
  entropy-coded with a per-slot probability) and their values quantised and entropy-coded.
- :class:`CSSnippetCoder`: compressed sensing. ``y = Phi x`` with a seeded random +-1 sensing
  matrix of ``num_measurements`` rows, ``y`` quantised and entropy-coded; the decoder recovers
  ``x = Psi s`` by orthogonal matching pursuit (scikit-learn) with ``sparsity`` atoms in a DWT or
  PCA (learned) basis ``Psi``.

Entropy coding uses :mod:`spikeinterface_vqcompress.core.entropy.rans` with frozen integer tables fitted
on the training data (stored with the coder, shipped with the decoder, not counted per snippet).
One rANS stream per coded batch of snippets: the stream's 4-byte final state is amortised over the
batch (as when an implant sends spikes in frames). Quantised values outside the table's alphabet are
clipped (the clipping is part of the measured distortion).

Every coder has ``fit(train_snippets)``, ``encode(snippets) -> bytes``,
``decode(data, num_snippets) -> snippets`` and ``config()``.
"""

from __future__ import annotations

import numpy as np

from spikeinterface_vqcompress.core.entropy.rans import build_frequency_table, decode_with_tables, encode_with_tables

_PRECISION_BITS = 15


def _quantize(values: np.ndarray, step: float, half_range: int) -> np.ndarray:
    return np.clip(np.round(values / step), -half_range, half_range).astype(np.int64)


def _tables_from_symbols(symbols: np.ndarray, alphabet_size: int) -> np.ndarray:
    """One frozen table per column of ``symbols`` ``(n, k)`` (values in ``[0, alphabet_size)``)."""
    return np.stack([build_frequency_table(np.bincount(symbols[:, column], minlength=alphabet_size), _PRECISION_BITS)
                     for column in range(symbols.shape[1])])


def encode_columns(symbols: np.ndarray, tables: np.ndarray) -> bytes:
    """rANS-encode ``symbols`` ``(n, k)``, column ``j`` with ``tables[j]``, as one stream behind a
    4-byte length (:func:`~spikeinterface_vqcompress.core.entropy.rans.encode_with_tables`, the coder
    spike-cae uses); ``b""`` when there is nothing to code."""
    symbols = np.asarray(symbols, dtype=np.int64)
    if symbols.size == 0:
        return b""
    payload = encode_with_tables(symbols, tables)
    return len(payload).to_bytes(4, "little") + payload


def decode_columns(data: bytes, tables: np.ndarray, num_rows: int) -> np.ndarray:
    """Inverse of :func:`encode_columns`: ``(num_rows, len(tables))`` int64 symbols."""
    if num_rows == 0:
        return np.zeros((0, tables.shape[0]), dtype=np.int64)
    length = int.from_bytes(data[:4], "little")
    return decode_with_tables(data[4:4 + length], tables, num_rows, name="snippet coder")


def payload_nbytes(data: bytes) -> int:
    """Bytes of a run of :func:`encode_columns` streams without their 4-byte length prefixes (the
    framing both ends know)."""
    position = count = 0
    while position < len(data):
        position += 4 + int.from_bytes(data[position:position + 4], "little")
        count += 1
    if position != len(data):
        raise ValueError("not a run of length-prefixed streams")
    return len(data) - 4 * count


class _Coder:
    name = "coder"

    def fit(self, train_snippets: np.ndarray):  # pragma: no cover - interface
        raise NotImplementedError

    def _check(self, snippets):
        snippets = np.asarray(snippets, dtype=np.float64)
        if snippets.ndim != 3:
            raise ValueError(f"snippets must have shape (n, channels, samples), got {snippets.shape}")
        if getattr(self, "shape", None) is not None and snippets.shape[1:] != self.shape:
            raise ValueError(f"this coder was fitted on snippets of shape {self.shape}, got {snippets.shape[1:]}")
        return snippets

    def payload_nbytes(self, snippets) -> int:
        """Real bytes of :meth:`encode` for these snippets, without the streams' length prefixes."""
        return payload_nbytes(self.encode(snippets))

    def roundtrip(self, snippets) -> tuple[np.ndarray, int]:
        """Decoded snippets from the real bytes, and the payload size in bytes."""
        data = self.encode(snippets)
        return self.decode(data, len(snippets)), payload_nbytes(data)


class PCASnippetCoder(_Coder):
    """PCA projection + uniform quantisation + per-component rANS.

    Parameters
    ----------
    num_components : int
        Principal components kept.
    step_uV : float
        Quantisation step of the coefficients (uV units of the unit-norm components).
    half_range : int, default: 1023
        Quantised values are clipped to ``[-half_range, half_range]``.
    """

    name = "pca"

    def __init__(self, num_components: int, step_uV: float, half_range: int = 1023):
        self.num_components = int(num_components)
        self.step_uV = float(step_uV)
        self.half_range = int(half_range)
        self.shape = None

    def config(self) -> dict:
        return {"coder": self.name, "num_components": self.num_components, "step_uV": self.step_uV}


    def fit(self, train_snippets):
        train = self._check(train_snippets)
        self.shape = train.shape[1:]
        flat = train.reshape(len(train), -1)
        self.mean = flat.mean(axis=0)
        _, _, components = np.linalg.svd(flat - self.mean, full_matrices=False)
        self.components = components[:self.num_components]
        symbols = self._symbols(train)
        self.tables = _tables_from_symbols(symbols, 2 * self.half_range + 1)
        return self

    def _symbols(self, snippets):
        coefficients = (snippets.reshape(len(snippets), -1) - self.mean) @ self.components.T
        return _quantize(coefficients, self.step_uV, self.half_range) + self.half_range

    def encode(self, snippets) -> bytes:
        return encode_columns(self._symbols(self._check(snippets)), self.tables)

    def decode(self, data, num_snippets) -> np.ndarray:
        symbols = decode_columns(data, self.tables, num_snippets)
        coefficients = (symbols - self.half_range) * self.step_uV
        flat = coefficients @ self.components + self.mean
        return flat.reshape((num_snippets,) + tuple(self.shape)).astype(np.float32)


def _dwt_matrix(num_samples: int, wavelet: str, level: int | None) -> np.ndarray:
    """Orthonormal analysis matrix ``W`` (T x T): coefficients = ``W @ x`` (periodised DWT)."""
    import pywt

    identity = np.eye(num_samples)
    rows = []
    for column in identity:
        coefficients = pywt.wavedec(column, wavelet, mode="periodization", level=level)
        rows.append(np.concatenate(coefficients))
    return np.asarray(rows).T  # column j = coefficients of unit vector j


class DWTSnippetCoder(_Coder):
    """Keep-``keep`` DWT coefficients, significance map + quantised values, rANS-coded.

    Parameters
    ----------
    keep : int
        Coefficients kept per snippet (over all channels).
    step_uV : float
        Quantisation step of the kept coefficients.
    wavelet : str, default: "sym4"
    level : int | None, default: 3
    half_range : int, default: 2047
    """

    name = "dwt"

    def __init__(self, keep: int, step_uV: float, wavelet: str = "sym4", level: int | None = 3,
                 half_range: int = 2047):
        self.keep = int(keep)
        self.step_uV = float(step_uV)
        self.wavelet = wavelet
        self.level = level
        self.half_range = int(half_range)
        self.shape = None

    def config(self) -> dict:
        return {"coder": self.name, "keep": self.keep, "step_uV": self.step_uV, "wavelet": self.wavelet,
                "level": self.level}


    def _transform(self, snippets):
        return np.einsum("st,nct->ncs", self.analysis, snippets).reshape(len(snippets), -1)

    def _select(self, coefficients):
        order = np.argsort(-np.abs(coefficients), axis=1, kind="stable")[:, :self.keep]
        mask = np.zeros(coefficients.shape, dtype=np.int64)
        np.put_along_axis(mask, order, 1, axis=1)
        return mask

    def fit(self, train_snippets):
        train = self._check(train_snippets)
        self.shape = train.shape[1:]
        self.analysis = _dwt_matrix(self.shape[1], self.wavelet, self.level)
        coefficients = self._transform(train)
        mask = self._select(coefficients)
        self.mask_tables = _tables_from_symbols(mask, 2)
        values = _quantize(coefficients[mask.astype(bool)], self.step_uV, self.half_range) + self.half_range
        self.value_table = _tables_from_symbols(values[:, None], 2 * self.half_range + 1)
        return self

    def encode(self, snippets) -> bytes:
        snippets = self._check(snippets)
        coefficients = self._transform(snippets)
        mask = self._select(coefficients)
        values = _quantize(coefficients[mask.astype(bool)], self.step_uV, self.half_range) + self.half_range
        return encode_columns(mask, self.mask_tables) + encode_columns(values[:, None], self.value_table)

    def decode(self, data, num_snippets) -> np.ndarray:
        # the mask stream is length-prefixed: the value stream starts after it
        position = 4 + int.from_bytes(data[:4], "little") if num_snippets else 0
        mask = decode_columns(data[:position], self.mask_tables, num_snippets).astype(bool)
        values = decode_columns(data[position:], self.value_table, int(mask.sum()))[:, 0]
        coefficients = np.zeros(mask.shape)
        coefficients[mask] = (values - self.half_range) * self.step_uV
        coefficients = coefficients.reshape((num_snippets,) + tuple(self.shape))
        return np.einsum("st,ncs->nct", self.analysis, coefficients).astype(np.float32)


class CSSnippetCoder(_Coder):
    """Compressed sensing with a seeded +-1 sensing matrix and OMP recovery in a DWT or PCA basis.

    Parameters
    ----------
    num_measurements : int
        Rows of the sensing matrix.
    step : float
        Quantisation step of the measurements (in uV x sqrt(C T) / sqrt(m) units of ``y``).
    sparsity : int, default: 8
        Atoms OMP picks.
    basis : "dwt" | "pca", default: "dwt"
        Sparsifying basis ``Psi`` (PCA = a basis learned on the training snippets).
    seed : int, default: 0
        Seed of the sensing matrix (shared by encoder and decoder).
    half_range : int, default: 2047
    """

    name = "cs"

    def __init__(self, num_measurements: int, step: float, sparsity: int = 8, basis: str = "dwt", seed: int = 0,
                 half_range: int = 2047):
        if basis not in ("dwt", "pca"):
            raise ValueError(f"basis must be 'dwt' or 'pca', got {basis!r}")
        self.num_measurements = int(num_measurements)
        self.step = float(step)
        self.sparsity = int(sparsity)
        self.basis = basis
        self.seed = int(seed)
        self.half_range = int(half_range)
        self.shape = None

    def config(self) -> dict:
        return {"coder": self.name, "num_measurements": self.num_measurements, "step": self.step,
                "sparsity": self.sparsity, "basis": self.basis, "seed": self.seed}


    def fit(self, train_snippets):
        train = self._check(train_snippets)
        self.shape = train.shape[1:]
        num_channels, num_samples = self.shape
        size = num_channels * num_samples
        rng = np.random.default_rng(self.seed)
        self.sensing = rng.choice([-1.0, 1.0], size=(self.num_measurements, size)) / np.sqrt(self.num_measurements)
        flat = train.reshape(len(train), -1)
        self.mean = flat.mean(axis=0)
        if self.basis == "dwt":
            analysis = _dwt_matrix(num_samples, "sym4", 3)
            # synthesis basis over the flattened (C, T) snippet: block-diagonal W^T
            self.synthesis = np.kron(np.eye(num_channels), analysis.T)  # (size, size), columns = atoms
        else:
            _, _, components = np.linalg.svd(flat - self.mean, full_matrices=False)
            self.synthesis = components.T
        self.dictionary = self.sensing @ self.synthesis
        self.atom_norms = np.linalg.norm(self.dictionary, axis=0)
        symbols = self._symbols(train)
        self.tables = _tables_from_symbols(symbols, 2 * self.half_range + 1)
        return self

    def _symbols(self, snippets):
        measurements = (snippets.reshape(len(snippets), -1) - self.mean) @ self.sensing.T
        return _quantize(measurements, self.step, self.half_range) + self.half_range

    def encode(self, snippets) -> bytes:
        return encode_columns(self._symbols(self._check(snippets)), self.tables)

    def decode(self, data, num_snippets) -> np.ndarray:
        from sklearn.linear_model import orthogonal_mp

        symbols = decode_columns(data, self.tables, num_snippets)
        measurements = (symbols - self.half_range) * self.step
        normalized_dictionary = self.dictionary / self.atom_norms
        sparsity = min(self.sparsity, self.num_measurements)
        coefficients = orthogonal_mp(normalized_dictionary, measurements.T, n_nonzero_coefs=sparsity, precompute=True)
        coefficients = np.atleast_2d(coefficients.T if coefficients.ndim == 2 else coefficients[None, :])
        coefficients = coefficients / self.atom_norms
        flat = coefficients @ self.synthesis.T + self.mean
        return flat.reshape((num_snippets,) + tuple(self.shape)).astype(np.float32)


def cae_payload(model, snippets_uV) -> tuple[bytes, np.ndarray]:
    """Real bytes of a spike CAE for a batch: per-position rANS streams of its code indices.

    Returns the bytes (length-prefixed streams, one per latent position) and the indices.
    """
    indices = model.encode_indices(snippets_uV)
    return encode_columns(indices, model.frequency_tables(_PRECISION_BITS)), indices


def cae_decode_payload(model, data: bytes, num_snippets: int) -> np.ndarray:
    """Inverse of :func:`cae_payload`: snippets in uV."""
    indices = decode_columns(data, model.frequency_tables(_PRECISION_BITS), num_snippets)
    return model.decode_indices(indices)
