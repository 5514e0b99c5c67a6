"""An adaptive binary range coder in integer arithmetic (numba), the LZMA construction.

The coder keeps a 32-bit ``range`` and a 64-bit ``low`` with carry propagation through a one-byte
cache (I. Pavlov's LZMA range coder). Probabilities are 16-bit integers adapted after every bit by
a count-driven shift estimator (see below), so the encoder and the decoder update
identical integer state: nothing depends on floating point, and a bitstream decodes the same way on
every machine.

State layout (``int64`` arrays so the functions compile once and inline into the codec kernels):

- encoder ``rc``: ``[low, range, cache, cache_size, position]`` writing into a ``uint8`` buffer;
- decoder ``rc``: ``[code, range, position, overrun]`` reading from a ``uint8`` buffer. Reading past
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
def _shift_low(rc, out):
    low = rc[0]
    if low < 0xFF000000 or low > _MASK32:
        carry = low >> 32
        temp = rc[2]
        while True:
            position = rc[4]
            if position < out.size:
                out[position] = (temp + carry) & 0xFF
            rc[4] = position + 1
            temp = 0xFF
            rc[3] -= 1
            if rc[3] == 0:
                break
        rc[2] = (low >> 24) & 0xFF
    rc[3] += 1
    rc[0] = (low & 0x00FFFFFF) << 8


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
def encode_bit(rc, out, probabilities, index, bit):
    """Code ``bit`` (0 or 1) with the adaptive probability ``probabilities[index]``."""
    encode_bit_weighted(rc, out, probabilities, index, bit, 1, 1)


@numba.njit(cache=True, inline="always")
def encode_bit_weighted(rc, out, probabilities, index, bit, weight_zero, weight_one):
    """Code ``bit`` with ``probabilities[index]`` reweighted by prior weights of a zero and a one
    (non-negative integers below 2**20; see :func:`_weighted`). The adaptive state is updated as by
    :func:`encode_bit`, from the bit alone."""
    p16 = probabilities[index, 0]
    count = probabilities[index, 1]
    p = p16 >> 1  # 15-bit probability of a zero
    if p < 8:
        p = 8
    elif p > 32760:
        p = 32760
    p = _weighted(p, weight_zero, weight_one)
    bound = (rc[1] >> 15) * p
    if bit == 0:
        rc[1] = bound
        probabilities[index, 0] = p16 + ((65536 - p16) >> _RATES[count])
    else:
        rc[0] += bound
        rc[1] -= bound
        probabilities[index, 0] = p16 - (p16 >> _RATES[count])
    if count < _LAST_COUNT:
        probabilities[index, 1] = count + 1
    while rc[1] < _TOP:
        rc[1] = (rc[1] << 8) & _MASK32
        _shift_low(rc, out)


@numba.njit(cache=True, inline="always")
def encode_direct(rc, out, value, num_bits):
    """Code the ``num_bits`` low bits of ``value`` with probability one half each (MSB first)."""
    for shift in range(num_bits - 1, -1, -1):
        rc[1] = rc[1] >> 1
        if (value >> shift) & 1:
            rc[0] += rc[1]
        while rc[1] < _TOP:
            rc[1] = (rc[1] << 8) & _MASK32
            _shift_low(rc, out)


@numba.njit(cache=True)
def encoder_flush(rc, out):
    """Write the final bytes; return the number of bytes written (may exceed ``out.size``: grow it)."""
    for _ in range(5):
        _shift_low(rc, out)
    return rc[4]


@numba.njit(cache=True, inline="always")
def _next_byte(rc, data):
    position = rc[2]
    rc[2] = position + 1
    if position < data.size:
        return np.int64(data[position])
    rc[3] += 1
    return np.int64(0)


@numba.njit(cache=True)
def decoder_init(data, start):
    """Decoder state reading ``data`` from byte ``start``."""
    rc = np.zeros(4, dtype=np.int64)
    rc[1] = _MASK32
    rc[2] = start
    code = np.int64(0)
    for _ in range(5):
        code = ((code << 8) | _next_byte(rc, data)) & _MASK32
    rc[0] = code
    return rc


@numba.njit(cache=True, inline="always")
def decode_bit(rc, data, probabilities, index):
    return decode_bit_weighted(rc, data, probabilities, index, 1, 1)


@numba.njit(cache=True, inline="always")
def decode_bit_weighted(rc, data, probabilities, index, weight_zero, weight_one):
    """Decode a bit written by :func:`encode_bit_weighted` with the same weights."""
    p16 = probabilities[index, 0]
    count = probabilities[index, 1]
    p = p16 >> 1
    if p < 8:
        p = 8
    elif p > 32760:
        p = 32760
    p = _weighted(p, weight_zero, weight_one)
    bound = (rc[1] >> 15) * p
    if rc[0] < bound:
        rc[1] = bound
        probabilities[index, 0] = p16 + ((65536 - p16) >> _RATES[count])
        bit = 0
    else:
        rc[0] -= bound
        rc[1] -= bound
        probabilities[index, 0] = p16 - (p16 >> _RATES[count])
        bit = 1
    if count < _LAST_COUNT:
        probabilities[index, 1] = count + 1
    while rc[1] < _TOP:
        rc[1] = (rc[1] << 8) & _MASK32
        rc[0] = ((rc[0] << 8) | _next_byte(rc, data)) & _MASK32
    return bit


@numba.njit(cache=True, inline="always")
def decode_direct(rc, data, num_bits):
    value = np.int64(0)
    for _ in range(num_bits):
        rc[1] = rc[1] >> 1
        bit = 0
        if rc[0] >= rc[1]:
            rc[0] -= rc[1]
            bit = 1
        value = (value << 1) | bit
        while rc[1] < _TOP:
            rc[1] = (rc[1] << 8) & _MASK32
            rc[0] = ((rc[0] << 8) | _next_byte(rc, data)) & _MASK32
    return value
