"""The one interface every compressor implements: :class:`Codec`, and :class:`HardwareProfile`.

A codec turns one chunk of traces, shaped ``(num_samples, num_channels)``, into bytes and back.
Everything needed to decode a chunk besides its shape and dtype (which the container stores) is
either in those bytes or in the codec's JSON config, so a ratio computed from ``len(bytes)`` plus
the container's header is exact.

The contract (what a codec must do; ``tests/test_codec_conformance.py`` checks every registered one):

- ``codec_id`` is the registry name; ``get_config()`` returns ``{"id": codec_id, **params}`` with
  JSON values only, and ``type(codec).from_config(codec.get_config())`` rebuilds an equal codec.
- ``encode(traces)`` takes one chunk ``(num_samples, num_channels)`` of a dtype in
  ``supported_dtypes`` and returns ``bytes``; ``decode(data, num_samples, num_channels, dtype)``
  returns that chunk: exactly when ``lossless``, within ``max_error`` when the codec states one.
- Truncated or malformed bytes raise :class:`~spikeinterface_vqcompress.core.errors.CorruptDataError`
  (never an unrelated exception); a flip that leaves a chunk well-formed is caught by the
  container's per-chunk CRC, so damage is never a silent wrong answer. Other weights than the ones
  the data names raise :class:`~spikeinterface_vqcompress.core.errors.ModelMismatchError`.
- Encoding and decoding are deterministic across machines (no recomputed floating-point
  probabilities in the bitstream).
- Constructor parameters have precise annotations (``int``, ``float | None``,
  ``Literal["auto", "add"]``) and defaults: :meth:`Codec.from_config` checks every name and type
  against them (:func:`check_parameters`) and the constructor checks ranges, naming the codec, the
  parameter and the accepted range (:func:`check_range`).

This module must not import spikeinterface: codecs are usable without it.
"""

from __future__ import annotations

import collections.abc
import difflib
import inspect
import json
import math
import numbers
import os
import types
import typing
from dataclasses import asdict, dataclass, field

import numpy as np

from spikeinterface_vqcompress.core.errors import CorruptDataError


@dataclass
class HardwareProfile:
    """What a hardware report needs to know about a codec's encoder.

    Parameters
    ----------
    operations_per_sample : dict, default: {}
        Operations per input sample (per channel), keyed by kind: ``"mac"`` (multiply-accumulate),
        ``"add"``, ``"compare"``, ``"shift"``, ``"memory_access"``. This set is closed: the energy
        model prices exactly these kinds, and an unknown kind raises ``ValueError`` in the report.
    operations_per_spike : dict, default: {}
        Operations per detected spike (snippet codecs), same keys.
    parameter_count : int, default: 0
        Number of learned or stored parameters the encoder needs.
    parameter_bits : int, default: 0
        Bits per parameter at the precision the encoder would run.
    algorithmic_latency_samples : int, default: 0
        Samples the encoder must buffer before it can emit the code for a sample.
    algorithmic_latency_chunks : float, default: 0
        Whole chunks the encoder must see first (an encoder that fits side information, such as
        predictor coefficients, on the chunk it codes has one chunk of latency). The report turns it
        into time with the chunk duration of the run.
    window_samples : int, default: 0
        Of ``algorithmic_latency_samples``, those spent waiting for an event's window to close (a
        spike codec cannot code a spike before its snippet ends). The report states the window and
        judges the latency that follows it.
    buffer_samples_per_channel : int, default: 0
        Working memory of the encoder in samples per channel.
    notes : str, default: ""
        How the figures were counted.
    """

    operations_per_sample: dict = field(default_factory=dict)
    operations_per_spike: dict = field(default_factory=dict)
    parameter_count: int = 0
    parameter_bits: int = 0
    algorithmic_latency_samples: int = 0
    algorithmic_latency_chunks: float = 0.0
    window_samples: int = 0
    buffer_samples_per_channel: int = 0
    notes: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class Codec:
    """Base class of all compressors.

    Subclasses set ``codec_id`` (the registry name), ``lossless`` and ``supported_dtypes``, store
    their constructor arguments (JSON values only) and implement :meth:`encode` and :meth:`decode`.
    Annotate every constructor parameter: :func:`check_parameters` reads the expected types from
    the annotations when a codec is built from a config.

    Parameters
    ----------
    **params
        The codec's parameters; every one must be a JSON value so that the config stored in a
        container rebuilds the same codec.
    """

    codec_id: str = ""
    lossless: bool = False
    supported_dtypes: tuple = ("int16",)
    description: str = ""
    # sha256 of the model weights the codec needs, if any (stored in the container header)
    model_sha256: str | None = None
    #: Keys ``get_config()`` writes for information only (not constructor parameters); dropped by
    #: :meth:`from_config`.
    informational_keys: tuple = ()
    #: Parameter names of earlier versions still found in containers: ``{old_name: new_name}``.
    renamed_parameters: dict = {}
    #: Container chunk duration (s) used when the caller gives none: chunks are coded independently,
    #: so a codec that learns from what it codes (``spike-vq``) wants longer ones.
    default_chunk_duration_s: float = 1.0

    def __init__(self, **params):
        self.params = dict(params)
        json.dumps(self.params)  # fail early on non-JSON parameters

    # -- configuration ---------------------------------------------------------------------
    def get_config(self) -> dict:
        """Return the JSON config that rebuilds this codec: ``{"id": codec_id, **params}``."""
        return {"id": self.codec_id, **self.params}

    @classmethod
    def from_config(cls, config: dict) -> "Codec":
        """Build a codec from its config ``{"id": codec_id, **params}``.

        The one place a codec is built from a config (``get_codec``, a container's header, the
        CLI): keys in :attr:`informational_keys` are dropped, old names in
        :attr:`renamed_parameters` are renamed, then :func:`check_parameters` checks every name and
        type against the constructor's signature before the constructor checks the ranges.
        Subclasses that override it should call ``super().from_config(config)``.
        """
        params = dict(config)
        params.pop("id", None)
        for key in cls.informational_keys:
            params.pop(key, None)
        for old_name, new_name in cls.renamed_parameters.items():
            if old_name in params:
                if new_name in params:
                    raise ValueError(f"codec '{cls.codec_id}': give '{new_name}' only; '{old_name}' is its earlier name")
                params[new_name] = params.pop(old_name)
        return cls(**check_parameters(cls, params))

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({params})"

    # -- the work ----------------------------------------------------------------------------
    def check_traces(self, traces: np.ndarray) -> np.ndarray:
        """Validate a chunk before encoding: 2D, supported dtype, finite values."""
        traces = np.asarray(traces)
        if traces.ndim != 2:
            raise ValueError(
                f"{self.codec_id}: traces must be 2D (num_samples, num_channels), got shape {traces.shape}"
            )
        if traces.shape[1] == 0:
            raise ValueError(f"{self.codec_id}: the recording has zero channels; select at least one channel")
        if traces.dtype.name not in self.supported_dtypes:
            raise TypeError(
                f"codec '{self.codec_id}' encodes {', '.join(self.supported_dtypes)} traces, got {traces.dtype}. "
                "Convert the recording first, e.g. spikeinterface.preprocessing.scale_to_int16(recording) "
                "or recording.astype('int16') for data already in integer units."
            )
        if traces.dtype.kind == "f" and not np.all(np.isfinite(traces)):
            raise ValueError(
                f"{self.codec_id}: traces contain NaN or inf values; clean or interpolate them before compressing"
            )
        return traces

    def encode(self, traces: np.ndarray) -> bytes:
        """Compress one chunk of traces shaped ``(num_samples, num_channels)`` into bytes."""
        raise NotImplementedError

    def decode(self, data: bytes, num_samples: int, num_channels: int, dtype) -> np.ndarray:
        """Rebuild a chunk of ``(num_samples, num_channels)`` traces of ``dtype`` from bytes."""
        raise NotImplementedError

    def hardware_profile(self, num_channels: int = 1, sampling_frequency: float = 30000.0) -> HardwareProfile:
        """Encoder operation counts, parameters and latency for the hardware report."""
        return HardwareProfile()

    # -- helpers shared by codecs --------------------------------------------------------------
    @staticmethod
    def _check_decoded(traces: np.ndarray, num_samples: int, num_channels: int, codec_id: str) -> np.ndarray:
        if traces.size != num_samples * num_channels:
            raise CorruptDataError(
                f"{codec_id}: decoded {traces.size} values where the container says "
                f"{num_samples} samples x {num_channels} channels; the data is damaged or truncated"
            )
        return traces.reshape(num_samples, num_channels)


# -- constructor parameters: one check for every codec built from a config -----------------------
class _Mismatch(Exception):
    """A value that does not fit a type (internal to :func:`check_parameters`)."""

    def __init__(self, note: str = ""):
        super().__init__(note)
        self.note = note


@dataclass(frozen=True)
class CodecParameter:
    """One constructor parameter of a codec, as :func:`codec_parameters` reads it.

    Parameters
    ----------
    name : str
        The parameter's name (a key of the codec config).
    annotation : object
        Its expected type: an evaluated annotation (``int``, ``float | None``, ``Literal["a", "b"]``,
        ``list[list[float]] | None``), the type of its default when it has no annotation, or
        ``typing.Any`` when neither tells.
    default : object
        Its default, or :data:`REQUIRED` when it has none.
    """

    name: str
    annotation: object
    default: object

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe(self) -> str:
        """``"max_error (int, default 0)"``."""
        details = [] if self.annotation is typing.Any else [_type_name(self.annotation)]
        details.append("required" if self.required else f"default {_show(self.default)}")
        return f"{self.name} ({', '.join(details)})"


#: Marks a :class:`CodecParameter` without a default.
REQUIRED = inspect.Parameter.empty


def codec_parameters(cls) -> tuple[list[CodecParameter], bool]:
    """The constructor parameters of a codec class, read from the signature of its ``__init__``.

    Returns
    -------
    parameters : list of CodecParameter
        The named parameters, in order.
    accepts_any : bool
        True when ``__init__`` also takes ``**params`` (then any other name is accepted as is).
    """
    signature = inspect.signature(cls.__init__)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation that does not evaluate: fall back to the defaults' types
        hints = {}
    parameters, accepts_any = [], False
    for index, parameter in enumerate(signature.parameters.values()):
        if index == 0 or parameter.kind == parameter.VAR_POSITIONAL:  # self, *args
            continue
        if parameter.kind == parameter.VAR_KEYWORD:
            accepts_any = True
            continue
        annotation = hints.get(parameter.name, typing.Any)
        if annotation is typing.Any and type(parameter.default) in (int, float, bool, str):
            annotation = type(parameter.default)
        parameters.append(CodecParameter(parameter.name, annotation, parameter.default))
    return parameters, accepts_any


def describe_parameters(cls) -> str:
    """One line listing a codec's parameters with types and defaults:
    ``"max_error (int, default 0), lpc_order (int, default 32), ..."``."""
    parameters, accepts_any = codec_parameters(cls)
    text = ", ".join(parameter.describe() for parameter in parameters) or "none"
    return text + (" (and any other name)" if accepts_any else "")


def check_parameters(cls, params: dict) -> dict:
    """Check a codec's parameters by name and type before its constructor runs.

    :meth:`Codec.from_config` runs it, so every codec built from a config (``get_codec``, a
    container's header, the CLI's ``--codec name:key=value``) goes through it. Names come from the
    signature of ``cls.__init__``, expected types from its annotations (or from a default's type
    where there is none). Ranges are the constructor's own business: it checks them and names the
    accepted range.

    - An unknown name is refused, with the closest accepted one and the full list.
    - An ``int`` parameter takes integers; ``2.0`` becomes ``2`` but ``2.5`` is refused, never
      truncated. A ``float`` takes any finite number. Numbers written as text (``"2"``) are read;
      other text (``"abc"``) is refused.
    - A ``bool`` takes ``True``/``False`` or the text ``"true"``/``"false"``.
    - ``None`` is accepted where the annotation allows it (``float | None``).
    - A ``Literal[...]`` takes one of its values; a ``list[...]`` takes a list, tuple or array of
      fitting items (returned as a list, a JSON value).

    Parameters
    ----------
    cls : type
        The codec class (its ``codec_id`` names it in the messages).
    params : dict
        The parameters, without ``"id"``.

    Returns
    -------
    dict
        The parameters converted to their expected types (``2.0`` -> ``2`` for an ``int``).

    Raises
    ------
    ValueError
        One line naming the codec, the parameter, the value given and what it accepts.
    """
    codec_id = getattr(cls, "codec_id", "") or cls.__name__
    parameters, accepts_any = codec_parameters(cls)
    by_name = {parameter.name: parameter for parameter in parameters}
    listing = ", ".join(parameter.describe() for parameter in parameters) or "none"
    unknown = [name for name in params if name not in by_name]
    if unknown and not accepts_any:
        if not parameters:
            raise ValueError(f"codec '{codec_id}' takes no parameters; got {', '.join(map(repr, unknown))}")
        names = []
        for name in unknown:
            match = difflib.get_close_matches(str(name), list(by_name), n=1, cutoff=0.6)
            names.append((name, match[0] if match else None))
        if len(names) == 1:
            name, match = names[0]
            suggestion = f"; did you mean '{match}'?" if match else "."
            raise ValueError(f"codec '{codec_id}' has no parameter '{name}'{suggestion} Parameters: {listing}")
        shown = ", ".join(f"'{name}'" + (f" (did you mean '{match}'?)" if match else "") for name, match in names)
        raise ValueError(f"codec '{codec_id}' has no parameters {shown}. Parameters: {listing}")
    missing = [parameter for parameter in parameters if parameter.required and parameter.name not in params]
    if missing:
        raise ValueError(f"codec '{codec_id}' needs the parameter{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(parameter.describe() for parameter in missing)}")
    checked = {}
    for name, value in params.items():
        parameter = by_name.get(name)
        if parameter is None:  # taken by **params
            checked[name] = value
            continue
        try:
            checked[name] = _coerce(value, parameter.annotation)
        except _Mismatch as mismatch:
            note = f", {mismatch.note}" if mismatch.note else ""
            default = "" if parameter.required else f" (default {_show(parameter.default)})"
            raise ValueError(f"codec '{codec_id}': parameter '{name}' must be {_type_phrase(parameter.annotation)}"
                             f"{default}, got {_show(value)}{note}") from None
    return checked


def check_range(codec_id: str, name: str, value, minimum=None, maximum=None, *, allow_none: bool = False,
                exclusive_minimum: bool = False, unit: str = "", note: str = "") -> None:
    """Refuse a parameter value outside ``[minimum, maximum]`` with one line naming the codec,
    the parameter, the accepted range and the value given.

    Parameters
    ----------
    codec_id : str
        The codec's registry name.
    name : str
        The parameter's name.
    value : int | float | None
        The value to check.
    minimum, maximum : int | float | None, default: None
        Inclusive bounds; None is unbounded on that side.
    allow_none : bool, default: False
        Whether None is an accepted value (the message then says so).
    exclusive_minimum : bool, default: False
        Refuse ``minimum`` itself (``> 0`` rather than ``>= 0``).
    unit : str, default: ""
        Unit of the bounds (``"stored units"``), shown after them.
    note : str, default: ""
        What the parameter does at its bounds (``"0 is lossless"``), shown in brackets.
    """
    if value is None and allow_none:
        return
    if value is not None:
        above_minimum = minimum is None or (value > minimum if exclusive_minimum else value >= minimum)
        if above_minimum and (maximum is None or value <= maximum):
            return
    suffix = f" {unit}" if unit else ""
    if minimum is not None and maximum is not None and not exclusive_minimum:
        accepted = f"between {minimum} and {maximum}{suffix}"
    elif minimum is not None:
        accepted = f"{'>' if exclusive_minimum else '>='} {minimum}{suffix}"
        if maximum is not None:
            accepted += f" and <= {maximum}{suffix}"
    else:
        accepted = f"<= {maximum}{suffix}"
    if allow_none:
        accepted += " or None"
    extra = f" ({note})" if note else ""
    raise ValueError(f"codec '{codec_id}': parameter '{name}' must be {accepted}{extra}, got {_show(value)}")


def _show(value) -> str:
    """A value as a user would write it in a config (``None``, ``'abc'``, ``2.5``)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _union_options(annotation) -> tuple | None:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return typing.get_args(annotation)
    return None


def _type_name(annotation) -> str:
    """``int``, ``float or None``, ``'auto', 'add' or 'replace'``, ``list of [int, int]``."""
    options = _union_options(annotation)
    if options is not None:
        names = [_type_name(option) for option in options if option is not type(None)]
        if type(None) in options:
            names.append("None")
        return " or ".join(names)
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is typing.Literal:
        values = [repr(value) for value in arguments]
        return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]
    if origin in (list, tuple, collections.abc.Sequence):
        if origin is tuple and arguments and arguments[-1] is not Ellipsis:
            return "[" + ", ".join(_type_name(argument) for argument in arguments) + "]"
        item = arguments[0] if arguments else typing.Any
        if item is typing.Any:
            return "list"
        item_name = _type_name(item)
        return f"list of lists of {item_name[len('list of '):]}" if item_name.startswith("list of ") else f"list of {item_name}"
    if origin is dict or annotation is dict:
        return "dict"
    if annotation is typing.Any:
        return "any value"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _type_phrase(annotation) -> str:
    """The expected type in a sentence: ``an int``, ``true or false``, ``one of 'auto', 'add'``."""
    options = _union_options(annotation)
    if options is not None:
        return " or ".join(_type_phrase(option) for option in options)
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(repr(value) for value in typing.get_args(annotation))
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "an int"
    if annotation is float:
        return "a number"
    if annotation is str:
        return "a string"
    if annotation is type(None):
        return "None"
    name = _type_name(annotation)
    return name if name.startswith("[") else "a " + name


def _coerce(value, annotation):
    """``value`` converted to ``annotation``, or :class:`_Mismatch`."""
    options = _union_options(annotation)
    if options is not None:
        if value is None and type(None) in options:
            return None
        notes = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option)
            except _Mismatch as mismatch:
                notes.append(mismatch.note)
        raise _Mismatch(next((note for note in notes if note), ""))
    if annotation is typing.Any or annotation is object:
        return value
    if annotation is type(None):
        if value is None:
            return None
        raise _Mismatch()
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is typing.Literal:
        for accepted in arguments:
            if type(value) is type(accepted) and value == accepted:
                return accepted
        raise _Mismatch()
    if annotation is bool:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise _Mismatch()
    if annotation is int:
        if isinstance(value, (bool, np.bool_)):
            raise _Mismatch("which is true/false, not a number")
        if isinstance(value, str):
            value = _number_from_text(value)
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, numbers.Real):
            if math.isfinite(value) and float(value).is_integer():
                return int(value)
            raise _Mismatch("which is not a whole number (parameters are never rounded)")
        raise _Mismatch()
    if annotation is float:
        if isinstance(value, (bool, np.bool_)):
            raise _Mismatch("which is true/false, not a number")
        if isinstance(value, str):
            value = _number_from_text(value)
        if isinstance(value, numbers.Real):
            if not math.isfinite(value):
                raise _Mismatch("which is not a finite number")
            return float(value)
        raise _Mismatch()
    if annotation is str:
        if isinstance(value, str):
            return value
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        raise _Mismatch()
    if origin in (list, tuple, collections.abc.Sequence) or annotation in (list, tuple):
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if not isinstance(value, (list, tuple)):
            raise _Mismatch()
        if origin is tuple and arguments and arguments[-1] is not Ellipsis:
            if len(value) != len(arguments):
                raise _Mismatch(f"with {len(value)} items where {len(arguments)} are expected")
            return [_coerce_item(item, argument) for item, argument in zip(value, arguments)]
        item_type = arguments[0] if arguments else typing.Any
        return [_coerce_item(item, item_type) for item in value]
    if origin is dict or annotation is dict:
        if isinstance(value, dict):
            return dict(value)
        raise _Mismatch()
    if isinstance(annotation, type):
        if isinstance(value, annotation):
            return value
        raise _Mismatch()
    return value  # an annotation this check does not know: the constructor decides


def _coerce_item(item, annotation):
    """One item of a list parameter; a misfit names the item."""
    try:
        return _coerce(item, annotation)
    except _Mismatch:
        raise _Mismatch(f"whose item {_show(item)} is not {_type_phrase(annotation)}") from None


def _number_from_text(text: str):
    """``"2"`` -> 2, ``"2.5"`` -> 2.5; other text stays text (and is then refused)."""
    stripped = text.strip()
    for parse in (int, float):
        try:
            return parse(stripped)
        except ValueError:
            continue
    return text
