"""The numba kernel shared by the broadband encoder and decoder.

One function, :func:`code_samples`, runs the prediction loop for both directions, so the encoder and
the decoder cannot drift apart: per sample it predicts from already reconstructed values, then either
quantises and codes the residual (encoding) or decodes it (decoding), reconstructs the sample and
updates the predictor with integer arithmetic only.

Prediction, per channel, in the coding domain (lattice indices or stored units):

1. ``x[t-1]`` plus a cascade of normalised LMS stages on the first difference ``d = x[t] - x[t-1]``:
   stage 1 (long) sees past ``d`` and, when the channel has a reference channel, the reference's
   ``d`` at ``t`` (already decoded) and ``t-1``; each further stage predicts the error of the stage
   before it from that error's past. Weights are Q14 integers; each update uses one integer
   division (the normalisation by the input energy).
A least-squares linear predictor of ``d`` (order ``lpc_order``, fitted by the encoder on the chunk and
sent as Q12 integers) runs before the adaptive stages. On the N1 data the fixed predictor alone
codes best (the adaptive stages add misadjustment noise), so the default preset has no adaptive
stage for single channels.

Residual coding: adaptive binary range coding (:mod:`..entropy.binary_range`) of the residual's bit
length (unary, contexts: running mean of ``|residual|`` in half-octaves), the two bits after its
leading one (contexts: that energy and the bit length), the remaining bits (contexts: bit length and
position) and its sign (context: sign of the previous residual).
"""

from __future__ import annotations

import numba
import numpy as np

from spikeinterface_vqcompress.core.entropy.binary_range import decode_bit, decode_bit_weighted, encode_bit, encode_bit_weighted, load_state, new_probabilities, store_state

FRACTION_BITS = 14
MAX_BIT_LENGTH = 24
NUM_ENERGY_CONTEXTS = 52
#: coding zones (format version 3): 0 everywhere, or 1 within a chunk's spike windows (tighter step, own contexts)
NUM_ZONES = 2
NUM_CONTEXTS = NUM_ENERGY_CONTEXTS * NUM_ZONES
NUM_BIAS_CONTEXTS = 3 * 17
ENERGY_EPSILON = 8
TREE_BITS = 7


def new_residual_model():
    """Probability tables of the residual coder: (length, first mantissa, second mantissa, rest, sign)."""
    return (
        new_probabilities(NUM_CONTEXTS * (MAX_BIT_LENGTH + 1)),
        new_probabilities(NUM_CONTEXTS * (MAX_BIT_LENGTH + 1) * 3),
        new_probabilities(NUM_CONTEXTS * (TREE_BITS + 1) << TREE_BITS),
        new_probabilities((MAX_BIT_LENGTH + 1) * (MAX_BIT_LENGTH + 1)),
        new_probabilities(3),
    )


@numba.njit(cache=True, inline="always")
def _bit_length(value):
    length = 0
    while value > 0:
        value >>= 1
        length += 1
    return length


@numba.njit(cache=True, inline="always")
def energy_context(average):
    """Half-octave bucket of the running mean of |residual| (``average`` is 16x that mean)."""
    length = _bit_length(average)
    if length < 2:
        return length
    context = 2 * length - 2 + ((average >> (length - 2)) & 1)
    if context >= NUM_ENERGY_CONTEXTS:
        context = NUM_ENERGY_CONTEXTS - 1
    return context


# code-width priors (format version 2): the unary length decisions use them up to this bit length
MAX_WEIGHTED_LENGTH = 5
NO_WIDTHS = np.zeros((1, 1), np.int64)


@numba.njit(cache=True, inline="always")
def _span(widths, row, size, start, stop):
    """Total width of the codes ``[start, stop)`` of the table ``widths[row, : size + 1]`` (cumulative
    widths of ``size`` codes; codes outside the table weigh 0)."""
    if start < 0:
        start = 0
    if stop > size:
        stop = size
    if stop <= start:
        return np.int64(0)
    return widths[row, stop] - widths[row, start]


@numba.njit(cache=True, inline="always")
def _ring(widths, row, size, centre, first, log2_count):
    """Mean width (x 256) of the codes ``centre +- m`` for ``first <= m < first + 2**log2_count``."""
    stop = first + (np.int64(1) << log2_count)
    total = (_span(widths, row, size, centre + first, centre + stop)
             + _span(widths, row, size, centre - stop + 1, centre - first + 1))
    return (total << 8) >> (log2_count + 1)


@numba.njit(cache=True, inline="always")
def _length_weights(widths, row, num_width_codes, centre, length):
    """Prior weights of "bit length == ``length``" (a zero) and "bit length > ``length``" (a one)."""
    if num_width_codes == 0 or length > MAX_WEIGHTED_LENGTH:
        return np.int64(1), np.int64(1)
    if length == 0:
        return _span(widths, row, num_width_codes, centre, centre + 1) << 8, _ring(widths, row, num_width_codes, centre, 1, 0)
    return (_ring(widths, row, num_width_codes, centre, np.int64(1) << (length - 1), length - 1),
            _ring(widths, row, num_width_codes, centre, np.int64(1) << length, length))


@numba.njit(cache=True, inline="always")
def _tree_weights(widths, row, num_width_codes, centre, prefix, position):
    """Prior weights of the next magnitude bit below ``prefix`` being a zero or a one."""
    if num_width_codes == 0:
        return np.int64(1), np.int64(1)
    return (_ring(widths, row, num_width_codes, centre, (prefix << 1) << position, position),
            _ring(widths, row, num_width_codes, centre, ((prefix << 1) | 1) << position, position))


@numba.njit(cache=True, inline="always")
def _sign_weights(widths, row, num_width_codes, centre, magnitude):
    """Prior weights of the residual ``+magnitude`` (a zero) and ``-magnitude`` (a one)."""
    if num_width_codes == 0:
        return np.int64(1), np.int64(1)
    return (_span(widths, row, num_width_codes, centre + magnitude, centre + magnitude + 1),
            _span(widths, row, num_width_codes, centre - magnitude, centre - magnitude + 1))


@numba.njit(cache=True, inline="always")
def put_residual(state, out, p_length, p_first, p_second, p_rest, p_sign, context, sign_context, value,
                 widths, row, num_width_codes, centre):
    """Encode one signed integer (|value| < 2**24) with the adaptive residual model; returns the
    range coder's state (:mod:`..entropy.binary_range`).

    With a code-width table (``widths[row, : num_width_codes + 1]``: cumulative widths of the channel's
    codes, ``num_width_codes`` 0: none; ``centre``: the prediction's position in that table) every decision
    among a few codes is reweighted by the widths of the codes on each side
    (:func:`..entropy.binary_range.encode_bit_weighted`).
    """
    magnitude = value if value >= 0 else -value
    length = _bit_length(magnitude)
    base = context * (MAX_BIT_LENGTH + 1)
    for j in range(MAX_BIT_LENGTH):
        w0, w1 = _length_weights(widths, row, num_width_codes, centre, j)
        if j == length:
            state = encode_bit_weighted(state, out, p_length, base + j, 0, w0, w1)
            break
        state = encode_bit_weighted(state, out, p_length, base + j, 1, w0, w1)
    if length >= 2:
        if length <= TREE_BITS:
            node_base = (context * (TREE_BITS + 1) + length) << TREE_BITS
            prefix = 1
            for position in range(length - 2, -1, -1):
                bit = (magnitude >> position) & 1
                w0, w1 = _tree_weights(widths, row, num_width_codes, centre, prefix, position)
                state = encode_bit_weighted(state, out, p_second, node_base + prefix, bit, w0, w1)
                prefix = (prefix << 1) | bit
        else:
            first = (magnitude >> (length - 2)) & 1
            state = encode_bit(state, out, p_first, base + length, first)
            second = (magnitude >> (length - 3)) & 1
            state = encode_bit(state, out, p_first, NUM_CONTEXTS * (MAX_BIT_LENGTH + 1) + 2 * (base + length) + first, second)
            for position in range(length - 4, -1, -1):
                state = encode_bit(state, out, p_rest, length * (MAX_BIT_LENGTH + 1) + position, (magnitude >> position) & 1)
    if length >= 1:
        w0, w1 = _sign_weights(widths, row, num_width_codes, centre, magnitude)
        state = encode_bit_weighted(state, out, p_sign, sign_context, 1 if value < 0 else 0, w0, w1)
    return state


@numba.njit(cache=True, inline="always")
def get_residual(state, data, p_length, p_first, p_second, p_rest, p_sign, context, sign_context,
                 widths, row, num_width_codes, centre):
    """Decode one signed integer written by :func:`put_residual` (same width table and centre);
    returns ``(state, value)``."""
    base = context * (MAX_BIT_LENGTH + 1)
    length = 0
    while length < MAX_BIT_LENGTH:
        w0, w1 = _length_weights(widths, row, num_width_codes, centre, length)
        state, bit = decode_bit_weighted(state, data, p_length, base + length, w0, w1)
        if bit == 0:
            break
        length += 1
    if length == 0:
        return state, np.int64(0)
    magnitude = np.int64(1)
    if length >= 2:
        if length <= TREE_BITS:
            node_base = (context * (TREE_BITS + 1) + length) << TREE_BITS
            for position in range(length - 2, -1, -1):
                w0, w1 = _tree_weights(widths, row, num_width_codes, centre, magnitude, position)
                state, bit = decode_bit_weighted(state, data, p_second, node_base + magnitude, w0, w1)
                magnitude = (magnitude << 1) | bit
        else:
            state, first = decode_bit(state, data, p_first, base + length)
            state, second = decode_bit(state, data, p_first, NUM_CONTEXTS * (MAX_BIT_LENGTH + 1) + 2 * (base + length) + first)
            magnitude = (((magnitude << 1) | first) << 1) | second
            for position in range(length - 4, -1, -1):
                state, bit = decode_bit(state, data, p_rest, length * (MAX_BIT_LENGTH + 1) + position)
                magnitude = (magnitude << 1) | bit
    w0, w1 = _sign_weights(widths, row, num_width_codes, centre, magnitude)
    state, negative = decode_bit_weighted(state, data, p_sign, sign_context, w0, w1)
    if negative:
        return state, -magnitude
    return state, magnitude


@numba.njit(cache=True)
def put_value(rc, out, p_length, p_first, p_second, p_rest, p_sign, context, value):
    """:func:`put_residual` with no width table, on the coder state held in ``rc`` (side information)."""
    store_state(rc, put_residual(load_state(rc), out, p_length, p_first, p_second, p_rest, p_sign, context, 1, value,
                                 NO_WIDTHS, 0, 0, 0))


@numba.njit(cache=True)
def get_value(rc, data, p_length, p_first, p_second, p_rest, p_sign, context):
    """Decode a value written by :func:`put_value`."""
    state, value = get_residual(load_state(rc), data, p_length, p_first, p_second, p_rest, p_sign, context, 1,
                                NO_WIDTHS, 0, 0, 0)
    store_state(rc, state)
    return value


@numba.njit(cache=True)
def put_values(rc, out, p_length, p_first, p_second, p_rest, p_sign, context, values):
    """:func:`put_value` of each of ``values`` (int64 array) in turn, in one call: the same bits."""
    state = load_state(rc)
    for i in range(values.size):
        state = put_residual(state, out, p_length, p_first, p_second, p_rest, p_sign, context, 1, values[i],
                             NO_WIDTHS, 0, 0, 0)
    store_state(rc, state)


@numba.njit(cache=True)
def get_values(rc, data, p_length, p_first, p_second, p_rest, p_sign, context, count):
    """``count`` values written by :func:`put_values` (or as many :func:`put_value`), int64 array."""
    values = np.empty(count, np.int64)
    state = load_state(rc)
    for i in range(count):
        state, values[i] = get_residual(state, data, p_length, p_first, p_second, p_rest, p_sign, context, 1,
                                        NO_WIDTHS, 0, 0, 0)
    store_state(rc, state)
    return values


@numba.njit(cache=True)
def code_samples(decoding, values, order, reference, low, high, step, zone, zone_step, fixed_weights, stage_orders,
                 stage_rates, widths, widths_start, widths_length, rc, buffer, p_length, p_first, p_second, p_rest, p_sign):
    """Run the prediction loop over ``values`` (num_samples, num_channels), int64, in place.

    Encoding: ``values`` holds the samples in the coding domain and is overwritten with the
    reconstruction (equal to the input when ``step`` is 1). Decoding: ``values`` is filled.

    Parameters
    ----------
    order : int64 array (num_channels,)
        Channels in coding order; a channel's reference comes before it.
    reference : int64 array (num_channels,)
        Reference channel of each channel, or -1.
    low, high : int64 arrays (num_channels,)
        Range of valid values per channel in the coding domain.
    step : int64 array (num_channels,)
        Quantisation step ``2 * delta + 1`` per channel (1 = lossless).
    zone : uint8 array (num_samples, num_channels) or (0, 0)
        Per sample, 1 where it lies in a spike window (coded with ``zone_step`` and its own contexts:
        residual energy and probability tables); shape (0, 0): no zones, every sample in zone 0.
    zone_step : int64 array (num_channels,)
        Quantisation step of zone 1 per channel.
    fixed_weights : int64 array (num_channels, lpc_order)
        Per-channel linear predictor of ``d`` from its past, Q12 (sent by the encoder; 0 columns: none).
    widths, widths_start, widths_length : int64 arrays (num_channels, n + 1), (num_channels,), (num_channels,)
        Per channel, cumulative widths of the codes ``widths_start + [0, widths_length)`` of the
        coding domain (format version 2); ``widths_length`` 0: no width table for that channel.

    Returns
    -------
    int
        0 on success, 1 when decoded values leave their valid range (damaged data).
    """
    num_samples, num_channels = values.shape
    num_stages = stage_orders.size
    max_order = 2
    for s in range(num_stages):
        if stage_orders[s] + 2 > max_order:
            max_order = stage_orders[s] + 2
    history = np.zeros((num_channels, num_stages, max_order), np.int64)
    weights = np.zeros((num_channels, num_stages, max_order), np.int64)
    energy = np.zeros((num_channels, num_stages), np.int64)
    previous = np.zeros(num_channels, np.int64)
    difference = np.zeros(num_channels, np.int64)
    last_difference = np.zeros(num_channels, np.int64)
    average = np.full((NUM_ZONES, num_channels), 16 * 4, np.int64)  # per zone: its own residual scale
    zoned = zone.shape[0] > 0
    last_sign = np.ones(num_channels, np.int64)
    last_magnitude = np.zeros(num_channels, np.int64)
    predictions = np.zeros(num_stages, np.int64)
    lpc_order = fixed_weights.shape[1]
    # newest-first window lpc_history[c, head[c] : head[c] + lpc_order] of a doubled circular buffer
    # int32 state (|d| < 2**17, |coefficient| < 2**15; products summed in int64): half the memory traffic
    lpc_history = np.zeros((num_channels, 2 * lpc_order + 1), np.int32)
    lpc_weights = fixed_weights.astype(np.int32)
    head = np.zeros(num_channels, np.int64)
    energies = np.zeros(num_stages, np.int64)
    half = np.int64(1) << (FRACTION_BITS - 1)
    state = load_state(rc)  # the range coder's state stays in registers (see ..entropy.binary_range)
    for t in range(num_samples):
        for position in range(num_channels):
            c = order[position]
            ref = reference[c]
            total = previous[c] << FRACTION_BITS
            lpc_prediction = np.int64(0)
            window = lpc_history[c, head[c]: head[c] + lpc_order]  # views with plain indices: the loop vectorises
            coefficients = lpc_weights[c]
            for i in range(lpc_order):
                lpc_prediction += np.int64(coefficients[i]) * np.int64(window[i])
            lpc_prediction <<= FRACTION_BITS - 12
            total += lpc_prediction
            for s in range(num_stages):
                n = stage_orders[s]
                accumulator = np.int64(0)
                for i in range(n):
                    accumulator += weights[c, s, i] * history[c, s, i]
                stage_energy = energy[c, s]
                if s == 0 and ref >= 0:
                    h1 = difference[ref]
                    h2 = last_difference[ref]
                    accumulator += weights[c, s, n] * h1 + weights[c, s, n + 1] * h2
                    stage_energy += h1 * h1 + h2 * h2
                predictions[s] = accumulator
                energies[s] = stage_energy
                total += accumulator
            prediction = (total + half) >> FRACTION_BITS
            if prediction < low[c]:
                prediction = low[c]
            elif prediction > high[c]:
                prediction = high[c]
            z = 0
            quantum = step[c]
            if zoned and zone[t, c]:
                z = 1
                quantum = zone_step[c]
            context = energy_context(average[z, c]) + z * NUM_ENERGY_CONTEXTS
            centre = prediction - widths_start[c]
            if decoding:
                if widths_length[c] > 0:
                    state, q = get_residual(state, buffer, p_length, p_first, p_second, p_rest, p_sign, context,
                                            last_sign[c], widths, c, widths_length[c], centre)
                else:  # the same function, inlined with no table: the width code compiles away
                    state, q = get_residual(state, buffer, p_length, p_first, p_second, p_rest, p_sign, context,
                                            last_sign[c], widths, c, 0, 0)
                value = prediction + q * quantum
                if value < low[c] or value > high[c]:
                    if quantum == 1:
                        store_state(rc, state)
                        return 1  # lossless values never leave the range: damaged data
                    value = low[c] if value < low[c] else high[c]
            else:
                residual = values[t, c] - prediction
                if quantum > 1:
                    delta = quantum >> 1
                    if residual >= 0:
                        q = (residual + delta) // quantum
                    else:
                        q = -((delta - residual) // quantum)
                else:
                    q = residual
                if widths_length[c] > 0:
                    state = put_residual(state, buffer, p_length, p_first, p_second, p_rest, p_sign, context,
                                         last_sign[c], q, widths, c, widths_length[c], centre)
                else:  # the same function, inlined with no table: the width code compiles away
                    state = put_residual(state, buffer, p_length, p_first, p_second, p_rest, p_sign, context,
                                         last_sign[c], q, widths, c, 0, 0)
                value = prediction + q * quantum
                if value < low[c]:
                    value = low[c]
                elif value > high[c]:
                    value = high[c]
            values[t, c] = value
            # -- update (identical in both directions) --
            d = value - previous[c]
            previous[c] = value
            last_difference[c] = difference[c]
            difference[c] = d
            target = d << FRACTION_BITS
            if lpc_order > 0:
                start = head[c] - 1
                if start < 0:
                    start += lpc_order
                head[c] = start
                lpc_history[c, start] = d
                lpc_history[c, start + lpc_order] = d
                target -= lpc_prediction
            for s in range(num_stages):
                n = stage_orders[s]
                error = target - predictions[s]
                gain = (error * 65536) // (energies[s] + ENERGY_EPSILON)
                shift = 16 + stage_rates[s]
                for i in range(n):
                    weights[c, s, i] += (gain * history[c, s, i]) >> shift
                if s == 0 and ref >= 0:
                    weights[c, s, n] += (gain * difference[ref]) >> shift
                    weights[c, s, n + 1] += (gain * last_difference[ref]) >> shift
                stage_input = (target + half) >> FRACTION_BITS
                if n > 0:
                    oldest = history[c, s, n - 1]
                    energy[c, s] += stage_input * stage_input - oldest * oldest
                    for i in range(n - 1, 0, -1):
                        history[c, s, i] = history[c, s, i - 1]
                    history[c, s, 0] = stage_input
                target = error
            magnitude = q if q >= 0 else -q
            average[z, c] += magnitude - (average[z, c] >> 4)
            last_magnitude[c] = magnitude
            if q > 0:
                last_sign[c] = 2
            elif q < 0:
                last_sign[c] = 0
            else:
                last_sign[c] = 1
    store_state(rc, state)
    return 0
