"""Online vector quantisation of spike features, learned from the spikes it codes, plus a quantised residual.

Numpy, and one numba kernel for the encoder's nearest-codeword search; no SpikeInterface. One
:class:`OnlineSpikeVQ` runs the same state machine in the encoder and in the decoder, spike by spike,
in time order:

- a codebook of ``codebook_size`` whole-snippet feature vectors, started from a shipped prior
  (trained on other recordings; slots past the prior start empty) and learned online: each coded
  spike pulls the codeword it used towards its *decoded* features (an exponential moving average
  with rate ``learning_rate``), so a codeword converges to the mean of the unit it codes;
- a spike farther from every codeword than ``escape_threshold`` (mean squared error per feature,
  in noise variances: pure noise scores about 1) is an *escape*: its features are sent
  as a dead-zone quantised difference (step ``escape_step``) from a base, the nearest codeword or
  zero, whichever is closer (side information, counted in the stream), and replace the least
  recently used codeword (dead-code restart): a unit that appears gets a codeword at its first spike,
  one that vanishes frees its codeword; the dead zone spends almost nothing on the noise the
  decoder's background puts back;
- the residual of every other spike (features minus its codeword) is sent with a dead-zone scalar
  quantiser of step ``residual_step`` (noise standard deviations; None sends no residual: the spike
  is its codeword). The step is the rate knob: a coarse step sends little more than the index,
  a fine one approaches the snippet's features.
- with ``refine_step`` (codeword refinement), the codewords learn from the encoder's *original*
  features instead of the decoded ones: the encoder sums, per codeword, the exact residuals of the
  spikes it codes, and after each batch (:func:`batch_size`: 4 spikes, then as many as the codeword
  already holds, at most 32) it sends the running-mean update ``w * mean(residuals)``
  (``w = batch / (held + batch)``, ``held`` capped at :data:`MAX_HELD` so that a codeword keeps
  following a drifting unit), dead-zone quantised with step ``refine_step`` times the update's own
  noise level (``w / sqrt(batch)`` noise standard deviations). Both sides count the spikes, so the
  decoder knows when each update comes and what step it has: the stream holds only its values. A
  coarse residual (a dead zone of 3 noise SD) leaves the codeword where the escape put it, biased by
  up to a noise SD per feature, and every codeword of a unit biased its own way; the refinement makes
  a codeword the mean of its spikes, to the precision its spike count allows. The EMA update
  (``learning_rate``) is then off.
- with ``lenient_young_codewords`` (encoder only), both escape thresholds are scaled by
  :func:`young_codeword_scale` of the nearest codeword: one born from a single spike carries that
  spike's noise, so its unit's next spikes lie about twice as far from it as from a settled codeword.

Every update uses only what the decoder has (the indices, residuals, escape features and
refinements), so the decoder replays the encoder's codebook exactly: both apply the same elementwise
float32 operations in the same order (no sums whose order could differ between machines): the
codebooks are bit-identical.
"""

from __future__ import annotations

import numba
import numpy as np

#: Largest quantised escape or residual value (int16 payload).
INTEGER_LIMIT = 32767
#: Spikes of the first refinement batch of a codeword, and the most in any batch.
FIRST_BATCH, MAX_BATCH = 4, 32
#: Most spikes a codeword's running mean weighs (older ones fade: a drifting unit is followed).
MAX_HELD = 128


@numba.njit(cache=True)
def batch_size(held):
    """Spikes in the next refinement batch of a codeword that already holds ``held`` spikes."""
    return min(max(held, FIRST_BATCH), MAX_BATCH)


@numba.njit(cache=True)
def refinement_scale(held, batch):
    """``(weight, step unit)`` of a batch: the running-mean weight ``batch / (held + batch)`` and the
    update's noise standard deviation ``weight / sqrt(batch)`` (float32, the same on both sides)."""
    weight = np.float32(batch / (min(held, MAX_HELD) + batch))
    return weight, np.float32(weight / np.sqrt(np.float32(batch)))


@numba.njit(cache=True)
def young_codeword_scale(held):
    """Escape thresholds' scale for a codeword holding ``held`` spikes (``lenient_young_codewords``):
    ``(1 + 1 / held) / (1 + 1 / MAX_HELD)``. A spike of a unit lies, in expectation, ``1 + 1 / n`` noise
    variances per feature from the mean of ``n`` other spikes of it: twice as far from a codeword born
    from one spike (an escape) as from a settled one, so the fixed threshold sends most of a new unit's
    next spikes as escapes too."""
    return np.float32((1.0 + 1.0 / max(held, 1)) / (1.0 + 1.0 / MAX_HELD))


@numba.njit(cache=True)
def deadzone_quantise_into(values, step, out):
    """Dead-zone scalar quantiser of float32 ``values`` into the int64 row ``out``: 0 for ``|v| < step``,
    else ``sign(v) * floor(|v| / step)``, clipped to +-:data:`INTEGER_LIMIT` (float32 arithmetic)."""
    for i in range(values.size):
        magnitude = min(np.floor(np.abs(values[i]) / step), np.float32(INTEGER_LIMIT))
        out[i] = np.int64(np.sign(values[i]) * magnitude)


@numba.njit(cache=True)
def deadzone_add(quantised, step, out):
    """``out += sign(q) * (|q| + 0.5) * step`` (the reconstruction of :func:`deadzone_quantise_into`; 0 stays
    0), each term rounded to float32 before the float32 product with ``step``."""
    for i in range(quantised.size):
        q = quantised[i]
        out[i] += np.float32(np.float64(np.sign(q)) * (np.float64(np.abs(q)) + 0.5)) * step


def deadzone_reconstruct(quantised: np.ndarray, step) -> np.ndarray:
    """The float32 row :func:`deadzone_add` adds: the decoded values of a quantised row."""
    out = np.zeros(len(quantised), dtype=np.float32)
    deadzone_add(np.asarray(quantised, dtype=np.int64), np.float32(step), out)
    return out


def _pairwise_plan(num_values: int) -> np.ndarray:
    """numpy's pairwise summation of ``num_values`` float32 values (what ``mean`` over a contiguous row
    does) as ``(kind, a, b)`` rows in evaluation order: kind 0 sums values ``a .. a + b - 1`` with
    eight interleaved accumulators (sequentially below 8 values), kind 1 adds the results of rows
    ``a`` and ``b``. Blocks of at most 128 values; larger ranges split in two at a multiple of 8."""
    plan = []

    def split(start, length):
        if length <= 128:
            plan.append((0, start, length))
        else:
            half = length // 2 - (length // 2) % 8
            left = split(start, half)
            right = split(start + half, length - half)
            plan.append((1, left, right))
        return len(plan) - 1

    split(0, int(num_values))
    return np.array(plan, dtype=np.int64).reshape(-1, 3)


@numba.njit(cache=True)
def _mean_squared_errors(codebook_t, vector, plan, partial, errors):
    """``errors[k] = mean((codebook[k] - vector) ** 2)`` in float32 for every codeword, bit for bit
    what numpy computes (the same differences, squares and pairwise summation order, :func:`_pairwise_plan`),
    with the codebook transposed (``(F, K)``) so that each step runs over all codewords at once."""
    num_features, num_codewords = codebook_t.shape
    accumulators = np.empty((8, num_codewords), dtype=np.float32)
    for step in range(plan.shape[0]):
        kind, first, second = plan[step, 0], plan[step, 1], plan[step, 2]
        if kind == 1:
            for k in range(num_codewords):
                partial[step, k] = partial[first, k] + partial[second, k]
            continue
        start, length = first, second
        if length < 8:
            for k in range(num_codewords):
                partial[step, k] = np.float32(0.0)
            for feature in range(start, start + length):
                for k in range(num_codewords):
                    difference = codebook_t[feature, k] - vector[feature]
                    partial[step, k] += difference * difference
            continue
        for lane in range(8):
            for k in range(num_codewords):
                difference = codebook_t[start + lane, k] - vector[start + lane]
                accumulators[lane, k] = difference * difference
        offset = 8
        while offset < length - length % 8:
            for lane in range(8):
                feature = start + offset + lane
                for k in range(num_codewords):
                    difference = codebook_t[feature, k] - vector[feature]
                    accumulators[lane, k] += difference * difference
            offset += 8
        for k in range(num_codewords):
            partial[step, k] = (((accumulators[0, k] + accumulators[1, k]) + (accumulators[2, k] + accumulators[3, k]))
                                + ((accumulators[4, k] + accumulators[5, k]) + (accumulators[6, k] + accumulators[7, k])))
        while offset < length:
            feature = start + offset
            for k in range(num_codewords):
                difference = codebook_t[feature, k] - vector[feature]
                partial[step, k] += difference * difference
            offset += 1
    last = plan.shape[0] - 1
    for k in range(num_codewords):
        errors[k] = partial[last, k] / np.float32(num_features)


@numba.njit(cache=True)
def _sum_of_squares(values, start, plan, partial):
    """``sum(values[start:start + n] ** 2)`` in float32 in numpy's pairwise order (``plan`` of :func:`_pairwise_plan`
    for ``n`` values; ``partial`` a float32 scratch row of the plan's length)."""
    accumulators = np.empty(8, dtype=np.float32)
    for step in range(plan.shape[0]):
        kind, first, second = plan[step, 0], plan[step, 1], plan[step, 2]
        if kind == 1:
            partial[step] = partial[first] + partial[second]
            continue
        begin, length = start + first, second
        if length < 8:
            partial[step] = np.float32(0.0)
            for i in range(begin, begin + length):
                partial[step] += values[i] * values[i]
            continue
        for lane in range(8):
            accumulators[lane] = values[begin + lane] * values[begin + lane]
        offset = 8
        while offset < length - length % 8:
            for lane in range(8):
                accumulators[lane] += values[begin + offset + lane] * values[begin + offset + lane]
            offset += 8
        partial[step] = (((accumulators[0] + accumulators[1]) + (accumulators[2] + accumulators[3]))
                         + ((accumulators[4] + accumulators[5]) + (accumulators[6] + accumulators[7])))
        while offset < length:
            partial[step] += values[begin + offset] * values[begin + offset]
            offset += 1
    return partial[plan.shape[0] - 1]


@numba.njit(cache=True)
def _encode_spikes(features, codebook, codebook_t, valid, last_used, held, in_batch, batch_sum, count, escape_threshold,
                   escape_step, learning_rate, residual_step, refine_step, group_threshold, num_groups, lenient, plan, partial,
                   errors, group_plan, group_partial, indices, residuals, bases, escapes, refinements, decoded):
    """The encoder's spike loop of :class:`OnlineSpikeVQ` (the same float32 operations as its Python methods,
    which the decoder runs): updates the state arrays in place; returns the new spike count and the rows
    written to ``residuals``, ``escapes`` (and ``bases``) and ``refinements``. ``residual_step``,
    ``refine_step`` <= 0 and ``group_threshold`` < 0 mean None; ``lenient``: both escape thresholds
    scaled by :func:`young_codeword_scale` of the nearest codeword."""
    num_spikes, num_features = features.shape
    num_codewords = codebook.shape[0]
    width = num_features // num_groups
    scratch = np.empty(num_features, dtype=np.float32)
    exact = np.empty(num_features, dtype=np.float32)
    vector_partial = np.empty(plan.shape[0], dtype=np.float32)
    num_residuals = num_escapes = num_refinements = 0
    for row in range(num_spikes):
        vector = features[row]
        _mean_squared_errors(codebook_t, vector, plan, partial, errors)
        index = 0
        best = errors[0] if valid[0] else np.float32(np.inf)
        for k in range(1, num_codewords):
            error = errors[k] if valid[k] else np.float32(np.inf)
            if error < best:
                index, best = k, error
        scale = young_codeword_scale(held[index]) if lenient else np.float32(1.0)
        escape = not best <= escape_threshold * scale
        if not escape and group_threshold >= 0:
            for feature in range(num_features):
                scratch[feature] = vector[feature] - codebook[index, feature]
            for group in range(num_groups):
                if _sum_of_squares(scratch, group * width, group_plan, group_partial) / np.float32(width) > group_threshold * scale:
                    escape = True
                    break
        if escape:
            base = index if best < _sum_of_squares(vector, 0, plan, vector_partial) / np.float32(num_features) else num_codewords
            quantised = escapes[num_escapes]
            for feature in range(num_features):
                scratch[feature] = vector[feature] - (codebook[base, feature] if base < num_codewords else np.float32(0.0))
            deadzone_quantise_into(scratch, escape_step, quantised)
            for feature in range(num_features):
                scratch[feature] = np.float32(0.0)
            deadzone_add(quantised, escape_step, scratch)
            if base < num_codewords:
                for feature in range(num_features):
                    scratch[feature] += codebook[base, feature]
            slot = 0
            for k in range(1, num_codewords):
                if last_used[k] < last_used[slot]:
                    slot = k
            for feature in range(num_features):
                codebook[slot, feature] = scratch[feature]
                codebook_t[feature, slot] = scratch[feature]
                decoded[row, feature] = scratch[feature]
                batch_sum[slot, feature] = 0.0
            valid[slot] = True
            last_used[slot] = count
            count += 1
            held[slot], in_batch[slot] = 1, 0
            bases[num_escapes] = base
            indices[row] = num_codewords
            num_escapes += 1
            continue
        for feature in range(num_features):
            exact[feature] = vector[feature] - codebook[index, feature]
            scratch[feature] = codebook[index, feature]
        if residual_step > 0:
            residual = residuals[num_residuals]
            deadzone_quantise_into(exact, residual_step, residual)
            num_residuals += 1
            deadzone_add(residual, residual_step, scratch)
            if refine_step <= 0:
                for feature in range(num_features):
                    codebook[index, feature] += learning_rate * (scratch[feature] - codebook[index, feature])
        for feature in range(num_features):
            decoded[row, feature] = scratch[feature]
        last_used[index] = count
        count += 1
        indices[row] = index
        if refine_step > 0:
            for feature in range(num_features):
                batch_sum[index, feature] += np.float64(exact[feature])
            in_batch[index] += 1
            if in_batch[index] >= batch_size(held[index]):
                batch = in_batch[index]
                weight, unit = refinement_scale(held[index], batch)
                step = refine_step * unit
                for feature in range(num_features):
                    scratch[feature] = np.float32(batch_sum[index, feature] / batch) * weight
                update = refinements[num_refinements]
                deadzone_quantise_into(scratch, step, update)
                num_refinements += 1
                deadzone_add(update, step, codebook[index])
                held[index] = min(held[index] + batch, MAX_HELD)
                in_batch[index] = 0
                for feature in range(num_features):
                    batch_sum[index, feature] = 0.0
        for feature in range(num_features):
            codebook_t[feature, index] = codebook[index, feature]
    return count, num_residuals, num_escapes, num_refinements


class OnlineSpikeVQ:
    """The encoder/decoder state of one chunk's online vector quantiser.

    Parameters
    ----------
    prior : np.ndarray
        ``(num_codewords, num_features)`` float32 starting codebook (copied; at most ``codebook_size`` used).
    escape_threshold : float
        Mean squared error per feature (noise variances) above which a spike is sent as an escape.
    escape_step : float
        Quantisation step of escape features (noise standard deviations).
    learning_rate : float
        EMA rate of the codeword update towards each decoded spike (used when residuals are sent).
    codebook_size : int | None, default: None
        Codewords; None: the prior's count.
    residual_step : float | None, default: None
        Dead-zone quantiser step of the residuals (noise standard deviations); None: no residual.
    refine_step : float | None, default: None
        Codeword refinement (module docstring): dead-zone step of each batch's running-mean update,
        in units of the update's own noise level; None: no refinement (the EMA on decoded features).
    group_threshold : float | None, default: None
        Also an escape: a spike whose mean squared error to its nearest codeword exceeds this within
        any one of ``num_groups`` equal groups of features (a snippet's channels). Encoder only: the
        decoder reads escapes from the stream. None: the whole-vector test alone.
    num_groups : int, default: 1
        Groups for ``group_threshold`` (the number of features must divide by it).
    lenient_young_codewords : bool, default: False
        Scale both escape thresholds by :func:`young_codeword_scale` of the nearest codeword (its spike
        count as refinement counts it; needs ``refine_step``). Encoder only.
    """

    def __init__(self, prior: np.ndarray, escape_threshold: float, escape_step: float, learning_rate: float,
                 codebook_size: int | None = None, residual_step: float | None = None, refine_step: float | None = None,
                 group_threshold: float | None = None, num_groups: int = 1, lenient_young_codewords: bool = False):
        prior = np.asarray(prior, dtype=np.float32)
        size = len(prior) if codebook_size is None else int(codebook_size)
        self.codebook = np.zeros((size, prior.shape[1]), dtype=np.float32)
        used = min(size, len(prior))
        self.codebook[:used] = prior[:used]
        self.valid = np.zeros(size, dtype=bool)  # slots past the prior start empty
        self.valid[:used] = True
        self.escape_threshold = float(escape_threshold)
        self.escape_step = np.float32(escape_step)
        self.learning_rate = np.float32(learning_rate)
        self.residual_step = None if residual_step is None else np.float32(residual_step)
        # least recently used first: empty slots, then the prior's codewords in reverse order, before any spike
        self.last_used = np.where(self.valid, -np.arange(size, 0, -1, dtype=np.int64), -2 * size - np.arange(size, 0, -1))
        self.count = 0
        self.refine_step = None if refine_step is None else np.float32(refine_step)
        self.group_threshold = None if group_threshold is None else float(group_threshold)
        self.num_groups = int(num_groups)
        if lenient_young_codewords and refine_step is None:
            raise ValueError("lenient_young_codewords needs refine_step: without refinement no codeword counts its spikes")
        self.lenient = bool(lenient_young_codewords)
        # refinement state: spikes each codeword holds (an escape or a prior codeword counts as one),
        # spikes in its open batch, and (encoder only) the sum of their exact residuals
        self.held = np.ones(size, dtype=np.int64)
        self.in_batch = np.zeros(size, dtype=np.int64)
        self.batch_sum = np.zeros((size, prior.shape[1]), dtype=np.float64)

    @property
    def codebook_size(self) -> int:
        return self.codebook.shape[0]

    @property
    def escape_symbol(self) -> int:
        """Index symbol that announces an escape."""
        return self.codebook_size

    # -- shared by both sides --------------------------------------------------------------------
    @property
    def no_base(self) -> int:
        """Escape base symbol meaning "from zero"."""
        return self.codebook_size

    def _escape(self, base: int, quantised: np.ndarray) -> tuple[np.ndarray, int]:
        """The escape's decoded features and the codeword slot they replaced."""
        decoded = deadzone_reconstruct(quantised, self.escape_step)
        if base != self.no_base:
            decoded += self.codebook[base]
        slot = int(np.argmin(self.last_used))
        self.codebook[slot] = decoded
        self.valid[slot] = True
        self.last_used[slot] = self.count
        self.count += 1
        self.held[slot], self.in_batch[slot] = 1, 0
        self.batch_sum[slot] = 0.0
        return decoded, slot

    def _coded(self, index: int, residual: np.ndarray | None) -> np.ndarray:
        decoded = self.codebook[index].copy()
        if residual is not None:
            decoded += deadzone_reconstruct(residual, self.residual_step)
            if self.refine_step is None:
                self.codebook[index] += self.learning_rate * (decoded - self.codebook[index])
        self.last_used[index] = self.count
        self.count += 1
        return decoded

    def _batch_closes(self, index: int) -> bool:
        """Count a coded spike of ``index``; True when its refinement batch is full (an update is due)."""
        if self.refine_step is None:
            return False
        self.in_batch[index] += 1
        return bool(self.in_batch[index] >= batch_size(self.held[index]))

    def _refine(self, index: int, quantised: np.ndarray) -> None:
        """Apply a batch's quantised running-mean update to codeword ``index`` and open the next batch."""
        batch = int(self.in_batch[index])
        _, unit = refinement_scale(self.held[index], batch)
        deadzone_add(quantised, self.refine_step * np.float32(unit), self.codebook[index])
        self.held[index] = min(int(self.held[index]) + batch, MAX_HELD)
        self.in_batch[index] = 0
        self.batch_sum[index] = 0.0

    # -- encoder -----------------------------------------------------------------------------------
    def encode(self, features: np.ndarray):
        """Code ``(n, num_features)`` features in order.

        Returns
        -------
        indices : np.ndarray
            ``(n,)`` int64: each spike's codeword, or :attr:`escape_symbol`.
        residuals : np.ndarray
            ``(num_coded, num_features)`` int64 quantised residuals of the spikes that are not escapes
            (no rows without ``residual_step``).
        bases : np.ndarray
            ``(num_escapes,)`` int64 base of each escape: a codeword or :attr:`no_base`.
        escapes : np.ndarray
            ``(num_escapes, num_features)`` int64 quantised escape differences, in order.
        refinements : np.ndarray
            ``(num_refinements, num_features)`` int64 quantised codeword updates, in order (no rows
            without ``refine_step``).
        decoded : np.ndarray
            ``(n, num_features)`` float32 features the decoder will rebuild.
        """
        features = np.ascontiguousarray(features, dtype=np.float32)
        num_spikes, num_features = len(features), self.codebook.shape[1]
        if features.ndim != 2 or features.shape[1] != num_features or num_features % self.num_groups:
            raise ValueError(f"features must be (n, {num_features}) in {self.num_groups} equal groups, got {features.shape}")
        indices = np.zeros(num_spikes, dtype=np.int64)
        decoded = np.zeros((num_spikes, num_features), dtype=np.float32)
        residuals, escapes, refinements = np.zeros((3, num_spikes, num_features), dtype=np.int64)
        bases = np.zeros(num_spikes, dtype=np.int64)
        # the search: ((codebook - v) ** 2).mean(1), the same float32 values from a kernel on a transposed copy
        codebook_t = np.ascontiguousarray(self.codebook.T)
        plan = _pairwise_plan(num_features)
        group_plan = _pairwise_plan(num_features // self.num_groups)
        # thresholds compared as numpy compares a float32 with a Python float (NEP 50: in float32)
        self.count, num_residuals, num_escapes, num_refinements = _encode_spikes(
            features, self.codebook, codebook_t, self.valid, self.last_used, self.held, self.in_batch, self.batch_sum,
            self.count, np.float32(self.escape_threshold), self.escape_step, self.learning_rate,
            np.float32(0.0 if self.residual_step is None else self.residual_step),
            np.float32(0.0 if self.refine_step is None else self.refine_step),
            np.float32(-1.0 if self.group_threshold is None else self.group_threshold), self.num_groups, self.lenient,
            plan, np.empty((len(plan), self.codebook_size), dtype=np.float32), np.empty(self.codebook_size, dtype=np.float32),
            group_plan, np.empty(len(group_plan), dtype=np.float32), indices, residuals, bases, escapes, refinements, decoded)
        return (indices, residuals[:num_residuals], bases[:num_escapes], escapes[:num_escapes],
                refinements[:num_refinements], decoded)

    # -- decoder -----------------------------------------------------------------------------------
    def decode(self, indices: np.ndarray, residuals: np.ndarray, bases: np.ndarray, escapes: np.ndarray,
               refinements: np.ndarray | None = None) -> np.ndarray:
        """Inverse of :meth:`encode`: ``(n, num_features)`` float32 decoded features.

        Raises ValueError when the stream names an empty codeword or runs out of rows (damaged data)."""
        decoded = np.zeros((len(indices), self.codebook.shape[1]), dtype=np.float32)
        escape_row = residual_row = refinement_row = 0
        if refinements is None:
            refinements = np.zeros((0, self.codebook.shape[1]), dtype=np.int64)
        for row, index in enumerate(np.asarray(indices, dtype=np.int64).tolist()):
            if index == self.escape_symbol:
                if escape_row >= len(escapes) or escape_row >= len(bases):
                    raise ValueError("more escapes announced than sent")
                base = int(bases[escape_row])
                if base != self.no_base and not self.valid[base]:
                    raise ValueError(f"escape base {base} is empty")
                decoded[row], _ = self._escape(base, escapes[escape_row])
                escape_row += 1
                continue
            if not self.valid[index]:
                raise ValueError(f"codeword {index} is empty")
            residual = None
            if self.residual_step is not None:
                if residual_row >= len(residuals):
                    raise ValueError("more residuals needed than sent")
                residual = residuals[residual_row]
                residual_row += 1
            decoded[row] = self._coded(index, residual)
            if self._batch_closes(index):
                if refinement_row >= len(refinements):
                    raise ValueError("more codeword refinements needed than sent")
                self._refine(index, refinements[refinement_row])
                refinement_row += 1
        return decoded


def kmeans(vectors: np.ndarray, num_clusters: int, iterations: int = 25, seed: int = 0) -> np.ndarray:
    """Lloyd k-means (k-means++ seeding) in float64; empty clusters restart on the worst-fitted vector.

    Used to train the shipped prior (:mod:`spikeinterface_vqcompress.training.spike_vq`).
    """
    rng = np.random.default_rng(seed)
    vectors = np.asarray(vectors, dtype=np.float64)
    num_clusters = min(int(num_clusters), len(vectors))
    centres = [vectors[rng.integers(len(vectors))]]
    distances = ((vectors - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, num_clusters):
        probabilities = distances / distances.sum() if distances.sum() > 0 else None
        centres.append(vectors[rng.choice(len(vectors), p=probabilities)])
        distances = np.minimum(distances, ((vectors - centres[-1]) ** 2).sum(axis=1))
    centres = np.array(centres)
    for _ in range(iterations):
        squared = (vectors ** 2).sum(axis=1)[:, None] - 2 * vectors @ centres.T + (centres ** 2).sum(axis=1)[None, :]
        labels = np.argmin(squared, axis=1)
        worst = np.argsort(squared[np.arange(len(vectors)), labels])[::-1]
        used = 0
        for cluster in range(num_clusters):
            members = labels == cluster
            if members.any():
                centres[cluster] = vectors[members].mean(axis=0)
            else:
                centres[cluster] = vectors[worst[used]]
                used += 1
    return centres.astype(np.float32)
