"""The package's own exceptions (one place; every layer raises these)."""


class CodecError(Exception):
    """Base class of the package's own errors when encoding or decoding."""


class CorruptDataError(CodecError, ValueError):
    """Raised when compressed bytes are damaged, truncated or forged."""


class ContainerVersionError(CorruptDataError):
    """Raised when a container was written by an incompatible (newer) format version."""


class ModelMismatchError(CorruptDataError):
    """Raised when the model weights at hand are not the ones the data was encoded with.

    The container (or the codec config) names the model and its sha256; decoding with other
    weights would silently give other samples, so it is refused instead. A subclass of
    :class:`CorruptDataError`: either way the bytes cannot be decoded here.
    """
