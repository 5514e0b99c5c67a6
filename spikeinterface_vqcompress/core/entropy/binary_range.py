"""An adaptive binary range coder in integer arithmetic (numba), the LZMA construction.

The coder keeps a 32-bit ``range`` and a 64-bit ``low`` with carry propagation through a one-byte
cache (I. Pavlov's LZMA range coder). Probabilities are 16-bit integers adapted after every bit by
a count-driven shift estimator (see below), so the encoder and the decoder update
identical integer state: nothing depends on floating point, and a bitstream decodes the same way on
every machine.

State layout. Between calls the state lives in an ``int64`` array ``rc``; inside a kernel it is a
tuple of ``int64`` (:func:`load_state` / :func:`store_state`), passed to and returned by every
coding function, so that once inlined it stays in registers (an array would be reloaded after
every store to the output or to a probability: the arrays may alias as far as the compiler knows).
The bit updates are branch-free (selects on a mask): a coded bit is hard to predict, and a
mispredicted branch per decision cost more than the arithmetic (the broadband kernel ran 1.4x faster
without them and with the state in registers).

- encoder: ``(low, range, cache, cache_size, position)`` writing into a ``uint8`` buffer;
- decoder: ``(code, range, position, overrun, 0)`` (padded, so that both tuples have one type)
  reading from a ``uint8`` buffer. Reading past
  the end yields zero bytes and counts ``overrun``; callers treat a non-zero overrun beyond the
  flush bytes as damaged data, so a decoder can never run away.
- a probability is a pair ``(p, count)`` stored in an ``int32[..., 2]`` array: ``p`` is the 16-bit
  probability of a zero bit (starting at one half), ``count`` the number of updates so far. The
  adaptation step is ``2 ** -rate`` with ``rate = bit_length(count + 1)`` capped at ``MAX_RATE``,
  i.e. close to a counting estimator while a context is young and an exponential window of about
  ``2 ** MAX_RATE`` bits once it is old. The coder uses the top 15 bits, clamped to
  ``[8, 32760] / 32768`` (so one decision costs at least 3.5e-4 bit: decoders can bound the number of
  symbols a buffer may hold).

The constants are part of the bitstream: changing one changes every stream. numba caches compiled
kernels that inline these functions; after editing this file, clear the ``__pycache__`` ``*.nbi`` /
``*.nbc`` files of the modules that use it.

This module must not import spikeinterface.
"""

from __future__ import annotations

import numba
import numpy as np

PROBABILITY_BITS = 16
PROBABILITY_HALF = 1 << 15
_TOP = 1 << 24
MAX_RATE = 10


def _rate_table(max_rate):
    rates = []
    count = 0
    while True:
        rate = min(max(1, int(count + 1).bit_length()), max_rate)
        rates.append(rate)
        if rate == max_rate:
            return np.array(rates, dtype=np.int32)
        count += 1


_RATES = _rate_table(MAX_RATE)
_LAST_COUNT = _RATES.size - 1
_MASK32 = 0xFFFFFFFF


def new_probabilities(*shape) -> np.ndarray:
    """Adaptive probabilities of a zero bit, one per context, all starting at one half."""
    return np.stack(np.broadcast_arrays(np.full(tuple(shape), PROBABILITY_HALF, np.int32), np.zeros(tuple(shape), np.int32)), -1).copy()


def new_encoder_state() -> np.ndarray:
    return np.array([0, _MASK32, 0, 1, 0], dtype=np.int64)


@numba.njit(cache=True, inline="always")
def load_state(rc):
    """The coder state held in ``rc`` as a tuple (encoder: 5 values, decoder: 4)."""
    if rc.size == 5:
        return (rc[0], rc[1], rc[2], rc[3], rc[4])
    return (rc[0], rc[1], rc[2], rc[3], np.int64(0))


@numba.njit(cache=True, inline="always")
def store_state(rc, state):
    """Write a state tuple back into ``rc``."""
    for i in range(rc.size):
        rc[i] = state[i]


@numba.njit(cache=True, inline="always")
def _shift_low(state, out):
    low, range_, cache, cache_size, position = state
    if low < 0xFF000000 or low > _MASK32:
        carry = low >> 32
        temp = cache
        while True:
            if position < out.size:
                out[position] = (temp + carry) & 0xFF
            position += 1
            temp = 0xFF
            cache_size -= 1
            if cache_size == 0:
                break
        cache = (low >> 24) & 0xFF
    cache_size += 1
    low = (low & 0x00FFFFFF) << 8
    return (low, range_, cache, cache_size, position)


@numba.njit(cache=True, inline="always")
def _weighted(p, weight_zero, weight_one):
    """15-bit probability of a zero, reweighted by the prior weights of the two outcomes.

    ``p' = p w0 / (p w0 + (1 - p) w1)`` in integers (the product of the adaptive estimate and a
    prior); equal weights leave ``p`` unchanged, and the result is clamped like ``p`` itself.
    """
    if weight_zero != weight_one:
        numerator = p * weight_zero
        denominator = numerator + (32768 - p) * weight_one
        if denominator > 0:
            p = (numerator << 15) // denominator
            if p < 8:
                p = 8
            elif p > 32760:
                p = 32760
    return p


@numba.njit(cache=True, inline="always")
def _adapt(probabilities, index, p16, count, mask):
    """Update the probability of a zero after a bit (``mask`` -1 for a one, 0 for a zero), branch-free."""
    rate = _RATES[count]
    after_zero = p16 + ((65536 - p16) >> rate)
    after_one = p16 - (p16 >> rate)
    probabilities[index, 0] = after_zero + ((after_one - after_zero) & mask)
    probabilities[index, 1] = count + (1 if count < _LAST_COUNT else 0)


@numba.njit(cache=True, inline="always")
def _probability(probabilities, index, weight_zero, weight_one):
    p16 = np.int64(probabilities[index, 0])
    count = np.int64(probabilities[index, 1])
    p = min(max(p16 >> 1, 8), 32760)  # 15-bit probability of a zero, clamped
    return p16, count, _weighted(p, weight_zero, weight_one)


@numba.njit(cache=True, inline="always")
def encode_bit(state, out, probabilities, index, bit):
    """Code ``bit`` (0 or 1) with the adaptive probability ``probabilities[index]``; returns the state."""
    return encode_bit_weighted(state, out, probabilities, index, bit, 1, 1)


@numba.njit(cache=True, inline="always")
def encode_bit_weighted(state, out, probabilities, index, bit, weight_zero, weight_one):
    """Code ``bit`` with ``probabilities[index]`` reweighted by prior weights of a zero and a one
    (non-negative integers below 2**20; see :func:`_weighted`); returns the new state. The adaptive
    state is updated as by :func:`encode_bit`, from the bit alone."""
    p16, count, p = _probability(probabilities, index, weight_zero, weight_one)
    low, range_, cache, cache_size, position = state
    bound = (range_ >> 15) * p
    mask = -np.int64(bit)
    low += bound & mask
    range_ = bound + ((range_ - 2 * bound) & mask)  # zero: bound; one: range - bound
    _adapt(probabilities, index, p16, count, mask)
    state = (low, range_, cache, cache_size, position)
    while state[1] < _TOP:
        state = _shift_low((state[0], (state[1] << 8) & _MASK32, state[2], state[3], state[4]), out)
    return state


@numba.njit(cache=True)
def encoder_flush(rc, out):
    """Write the final bytes of the encoder ``rc``; return the number of bytes written (may exceed
    ``out.size``: grow it)."""
    state = load_state(rc)
    for _ in range(5):
        state = _shift_low(state, out)
    store_state(rc, state)
    return rc[4]


@numba.njit(cache=True, inline="always")
def _next_byte(data, position, overrun):
    if position < data.size:
        return np.int64(data[position]), position + 1, overrun
    return np.int64(0), position + 1, overrun + 1


@numba.njit(cache=True)
def decoder_init(data, start):
    """Decoder state ``rc`` reading ``data`` from byte ``start``."""
    rc = np.zeros(4, dtype=np.int64)
    rc[1] = _MASK32
    position = np.int64(start)
    overrun = np.int64(0)
    code = np.int64(0)
    for _ in range(5):
        byte, position, overrun = _next_byte(data, position, overrun)
        code = ((code << 8) | byte) & _MASK32
    rc[0] = code
    rc[2] = position
    rc[3] = overrun
    return rc


@numba.njit(cache=True, inline="always")
def _decoder_normalise(code, range_, position, overrun, data):
    while range_ < _TOP:
        range_ = (range_ << 8) & _MASK32
        byte, position, overrun = _next_byte(data, position, overrun)
        code = ((code << 8) | byte) & _MASK32
    return (code, range_, position, overrun, np.int64(0))


@numba.njit(cache=True, inline="always")
def decode_bit(state, data, probabilities, index):
    """Decode a bit written by :func:`encode_bit`; returns ``(state, bit)``."""
    return decode_bit_weighted(state, data, probabilities, index, 1, 1)


@numba.njit(cache=True, inline="always")
def decode_bit_weighted(state, data, probabilities, index, weight_zero, weight_one):
    """Decode a bit written by :func:`encode_bit_weighted` with the same weights; returns ``(state, bit)``."""
    p16, count, p = _probability(probabilities, index, weight_zero, weight_one)
    code, range_, position, overrun, _ = state
    bound = (range_ >> 15) * p
    bit = np.int64(1) if code >= bound else np.int64(0)
    mask = -bit
    code -= bound & mask
    range_ = bound + ((range_ - 2 * bound) & mask)
    _adapt(probabilities, index, p16, count, mask)
    return _decoder_normalise(code, range_, position, overrun, data), bit
