"""Hardware report: can an implant afford this codec?

Every codec describes its encoder in a :class:`~spikeinterface_vqcompress.core.codec.HardwareProfile`
(operations per sample and per spike, parameters, buffers, latency). :func:`hardware_report` turns
that profile and what a run measured (the real compressed bytes, the encoding time) into a
:class:`HardwareReport`:

- raw bitrate (channels x sampling rate x ADC bits) and compressed bitrate from the real bytes, and
  the share of a target link (default: the N1 case, 1 Mbit/s for 1024 channels, scaled to the
  recording's channel count);
- encoder operations per second and per channel, parameter memory at a chosen weight precision and
  buffer memory;
- an energy model (:class:`EnergyModel`, energy per operation and per SRAM access for a process
  node, radio energy per bit; every figure names its source and can be overridden) giving the
  estimated power per channel and for 1024 channels, radio included;
- algorithmic latency (and, for event codecs, the window it includes), measured host throughput
  (multiples of real time), per-chunk latency and, when measured, processing time per event;
- one verdict row per budget (:class:`Budget`; N1: <= 1 ms, <= 10 mW incl. radio, <= 1 Mbit/s).

The operation counts come from each codec's :meth:`~spikeinterface_vqcompress.core.codec.Codec.hardware_profile`
(counted analytically from the algorithm); :func:`count_module_operations` counts the
multiply-accumulates of a torch module from hooks on its real layers, a cross-check of such counts
and a tool for new models. The energy figures are estimates for a
dedicated digital implementation at the named process node, not a measurement of any chip.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = [
    "Budget",
    "EnergyModel",
    "HardwareReport",
    "N1_BUDGET",
    "HOROWITZ_45NM",
    "RADIOS",
    "count_module_operations",
    "hardware_report",
]


@dataclass(frozen=True)
class Budget:
    """The limits an implant must meet.

    Parameters
    ----------
    name : str
        Short name shown in the verdict rows.
    link_bits_per_second : float
        Capacity of the link for ``reference_channels`` channels.
    reference_channels : int
        Channel count the link and power budgets are stated for; they scale linearly with the
        recording's channel count.
    max_latency_ms : float
        Largest acceptable latency of the encoder: algorithmic, counted after an event's window closes
        for codecs that code events (a spike codec waits for each snippet to end; the report states
        that window), plus the measured processing time per event when the run gives one.
    max_power_mW : float
        Power budget for ``reference_channels`` channels, radio included.
    source : str
        Where the budget comes from.
    """

    name: str = "N1"
    link_bits_per_second: float = 1.0e6
    reference_channels: int = 1024
    max_latency_ms: float = 1.0
    max_power_mW: float = 10.0
    source: str = ("Neuralink Compression Challenge statement: 1024 electrodes x 20 kHz x 10 bit "
                   "(~200 Mbit/s) over a ~1 Mbit/s radio, < 1 ms, < 10 mW")

    def link_share_bits_per_second(self, num_channels: int) -> float:
        """The link capacity available to ``num_channels`` channels."""
        return self.link_bits_per_second * num_channels / self.reference_channels


N1_BUDGET = Budget()

HOROWITZ_SOURCE = ("M. Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014, "
                   "45 nm, 0.9 V: integer add 8/16/32 bit 0.03/0.05/0.1 pJ, multiply 8/32 bit 0.2/3.1 pJ, "
                   "fp16 add/mult 0.4/1.1 pJ, fp32 add/mult 0.9/3.7 pJ, 64-bit SRAM read 10 pJ (8 kB), "
                   "20 pJ (32 kB), 100 pJ (1 MB)")

#: Radio energy per transmitted bit, by named link, with its source.
RADIOS = {
    "inductive-impedance-modulation": {
        "pJ_per_bit": 100e-6 / 2.8e6 * 1e12,
        "source": "S. Mandal, R. Sarpeshkar, 'Power-efficient impedance-modulation wireless data links for "
                  "biomedical implants', IEEE TBioCAS 2(4), 2008: 2.8 Mbit/s for 100 uW in the implant (35.7 pJ/bit)",
    },
    "ir-uwb-130nm": {
        "pJ_per_bit": 21.0,
        "source": "'A 21.3%-efficiency clipped-sinusoid UWB impulse radio transmitter with simultaneous inductive "
                  "powering and data receiving', arXiv:2212.01710, 130 nm CMOS, 230 Mbit/s at 21 pJ/bit",
    },
    "ir-uwb-28nm": {
        "pJ_per_bit": 5.8,
        "source": "implantable IR-UWB telemetry for intracortical neural sensing, 28 nm CMOS, 1.66 Gbit/s at "
                  "5.8 pJ/bit (PMC7614137)",
    },
}


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation, per memory access and per transmitted bit.

    Operation energies are per operation at a given integer width (``add``/``mul``, keyed by bits)
    or floating-point format; a multiply-accumulate costs one multiply and one add; comparisons
    and shifts cost an add of the same width. A memory access reads one 64-bit SRAM word; its
    energy depends on the memory size (``sram_read_pJ``: size in bytes -> pJ, interpolated on a
    log scale between the listed sizes, clamped at the ends).

    Parameters
    ----------
    name : str
    node_nm : int
        Process node the figures are for.
    add_pJ, mul_pJ : dict
        Integer add / multiply energy by operand width in bits.
    float_add_pJ, float_mul_pJ : dict
        Floating-point add / multiply energy by width (16, 32).
    sram_read_pJ : dict
        64-bit SRAM read energy by SRAM size in bytes.
    radio : str
        Key of :data:`RADIOS`, or "custom" with ``radio_pJ_per_bit`` and ``radio_source`` set.
    radio_pJ_per_bit : float | None
        Overrides the radio's energy per bit.
    radio_source : str | None
    energy_scale : float, default: 1.0
        Multiplies every compute and memory energy, to move the table to another process node
        (for example a factor from a published scaling study); say where it comes from in ``source``.
    source : str
        Where the figures come from.
    """

    name: str = "horowitz-45nm"
    node_nm: int = 45
    add_pJ: dict = field(default_factory=lambda: {8: 0.03, 16: 0.05, 32: 0.1})
    # 16-bit multiply: not in the table; interpolated quadratically in width from 8 and 32 bits (0.2*4 = 3.1/4 ~ 0.8).
    mul_pJ: dict = field(default_factory=lambda: {8: 0.2, 16: 0.8, 32: 3.1})
    float_add_pJ: dict = field(default_factory=lambda: {16: 0.4, 32: 0.9})
    float_mul_pJ: dict = field(default_factory=lambda: {16: 1.1, 32: 3.7})
    sram_read_pJ: dict = field(default_factory=lambda: {8 * 1024: 10.0, 32 * 1024: 20.0, 1024 * 1024: 100.0})
    radio: str = "inductive-impedance-modulation"
    radio_pJ_per_bit: float | None = None
    radio_source: str | None = None
    energy_scale: float = 1.0
    source: str = HOROWITZ_SOURCE

    def __post_init__(self):
        if self.radio != "custom" and self.radio not in RADIOS:
            raise ValueError(f"unknown radio {self.radio!r}: use one of {sorted(RADIOS)} or 'custom' with radio_pJ_per_bit")
        if self.radio == "custom" and self.radio_pJ_per_bit is None:
            raise ValueError("radio='custom' needs radio_pJ_per_bit (and radio_source to name where it comes from)")
        if not self.energy_scale > 0:
            raise ValueError("energy_scale must be positive")

    @property
    def radio_energy_pJ_per_bit(self) -> float:
        if self.radio_pJ_per_bit is not None:
            return float(self.radio_pJ_per_bit)
        return float(RADIOS[self.radio]["pJ_per_bit"])

    @property
    def radio_reference(self) -> str:
        if self.radio_source:
            return self.radio_source
        return RADIOS.get(self.radio, {}).get("source", "user value")

    @staticmethod
    def _pick(table: dict, bits: int) -> float:
        widths = sorted(int(key) for key in table)
        for width in widths:
            if bits <= width:
                return float(table[width] if width in table else table[str(width)])
        return float(table[widths[-1]] if widths[-1] in table else table[str(widths[-1])])

    def operation_pJ(self, kind: str, bits: int = 16, floating_point: bool = False) -> float:
        """Energy of one operation of ``kind`` ("mac", "mul", "add", "compare", "shift")."""
        if floating_point:
            add = self._pick(self.float_add_pJ, bits)
            mul = self._pick(self.float_mul_pJ, bits)
        else:
            add = self._pick(self.add_pJ, bits)
            mul = self._pick(self.mul_pJ, bits)
        energies = {"mac": mul + add, "mul": mul, "add": add, "compare": add, "shift": add}
        if kind not in energies:
            raise ValueError(f"unknown operation kind {kind!r}: use one of {sorted(energies)} or 'memory_access'")
        return energies[kind] * self.energy_scale

    def sram_access_pJ(self, memory_bytes: float) -> float:
        """Energy of one 64-bit read from an SRAM of ``memory_bytes`` bytes."""
        sizes = sorted(int(size) for size in self.sram_read_pJ)
        values = [float(self.sram_read_pJ[size] if size in self.sram_read_pJ else self.sram_read_pJ[str(size)]) for size in sizes]
        size = min(max(float(memory_bytes), sizes[0]), sizes[-1])
        energy = float(np.interp(math.log(size), [math.log(s) for s in sizes], values))
        return energy * self.energy_scale

    def to_dict(self) -> dict:
        data = asdict(self)
        data["radio_energy_pJ_per_bit"] = self.radio_energy_pJ_per_bit
        data["radio_reference"] = self.radio_reference
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "EnergyModel":
        known = {key: value for key, value in data.items() if key in cls.__dataclass_fields__}
        for key in ("add_pJ", "mul_pJ", "float_add_pJ", "float_mul_pJ", "sram_read_pJ"):
            if key in known:
                known[key] = {int(width): float(value) for width, value in known[key].items()}
        return cls(**known)


HOROWITZ_45NM = EnergyModel()


def count_module_operations(module, example_input) -> dict:
    """Count the multiply-accumulates of one forward pass of a torch module, layer by layer.

    Hooks every ``Conv1d``, ``ConvTranspose1d``, ``Conv2d`` and ``Linear`` and counts
    ``output elements x (input channels / groups) x kernel size`` multiply-accumulates (biases and
    normalisations add one add per output element), so the figure comes from the actual model
    and input shape.

    Parameters
    ----------
    module : torch.nn.Module
    example_input : torch.Tensor | tuple
        One input (or the positional arguments) for ``module``; its batch size divides the counts.

    Returns
    -------
    operations : dict
        ``{"mac": ..., "add": ..., "parameter_count": ...}`` per item of the batch.
    """
    import torch

    counts = {"mac": 0, "add": 0}
    hooks = []

    def conv_hook(layer, inputs, output):
        kernel = int(np.prod(layer.kernel_size))
        if isinstance(layer, torch.nn.ConvTranspose1d):
            # each input element scatters into out_channels/groups x kernel outputs
            counts["mac"] += int(inputs[0].numel() * (layer.out_channels // layer.groups) * kernel)
        else:
            counts["mac"] += int(output.numel() * (layer.in_channels // layer.groups) * kernel)
        if layer.bias is not None:
            counts["add"] += int(output.numel())

    def linear_hook(layer, inputs, output):
        counts["mac"] += int(output.numel() * layer.in_features)
        if layer.bias is not None:
            counts["add"] += int(output.numel())

    def norm_hook(layer, inputs, output):
        counts["mac"] += int(output.numel())  # folded into one scale-and-shift per element

    for layer in module.modules():
        if isinstance(layer, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.ConvTranspose1d)):
            hooks.append(layer.register_forward_hook(conv_hook))
        elif isinstance(layer, torch.nn.Linear):
            hooks.append(layer.register_forward_hook(linear_hook))
        elif isinstance(layer, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
            hooks.append(layer.register_forward_hook(norm_hook))
    arguments = example_input if isinstance(example_input, tuple) else (example_input,)
    batch = int(arguments[0].shape[0]) if arguments and hasattr(arguments[0], "shape") else 1
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(*arguments)
    finally:
        for hook in hooks:
            hook.remove()
        module.train(was_training)
    return {
        "mac": counts["mac"] / max(batch, 1),
        "add": counts["add"] / max(batch, 1),
        "parameter_count": int(sum(parameter.numel() for parameter in module.parameters())),
    }


@dataclass
class HardwareReport:
    """What a codec costs an implant, for one recording configuration. Built by :func:`hardware_report`.

    All rates are per second; ``*_per_channel`` figures are per recording channel, and the
    ``*_1024ch`` figures scale them to 1024 channels (the N1 case).
    """

    codec: dict
    num_channels: int
    sampling_frequency: float
    adc_bits: int
    raw_bits_per_second: float
    compressed_bits_per_second: float | None
    compression_ratio_vs_adc: float | None
    link_bits_per_second: float
    link_share: float | None
    operations_per_second_per_channel: dict
    event_rate_hz_per_channel: float
    parameter_count: int
    weight_bits: int
    parameter_memory_bytes: float
    buffer_memory_bytes: float
    compute_power_uW_per_channel: float
    memory_power_uW_per_channel: float
    radio_power_uW_per_channel: float | None
    power_uW_per_channel: float | None
    power_mW_1024ch: float | None
    algorithmic_latency_ms: float
    host_realtime_factor: float | None
    host_chunk_latency_ms: float | None
    verdicts: list
    budget: dict
    energy_model: dict
    window_ms: float = 0.0
    host_event_processing_ms: float | None = None
    latency_after_window_ms: float | None = None
    notes: str = ""

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self), default=float))

    @classmethod
    def from_dict(cls, data: dict) -> "HardwareReport":
        return cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})

    @property
    def passes(self) -> bool | None:
        """True if every verdict passes, False if one fails, None if one could not be decided."""
        values = [row["pass"] for row in self.verdicts]
        if any(value is False for value in values):
            return False
        if any(value is None for value in values):
            return None
        return True

    def verdict_table(self) -> str:
        """The verdict rows as a markdown table."""
        lines = ["| budget | value | limit | verdict |", "|---|---|---|---|"]
        for row in self.verdicts:
            value = "n/a" if row["value"] is None else f"{row['value']:.4g} {row['unit']}"
            verdict = {True: "pass", False: "FAIL", None: "unknown"}[row["pass"]]
            lines.append(f"| {row['name']} | {value} | {row['limit']:.4g} {row['unit']} | {verdict} |")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """A readable summary: the figures, then the verdict rows, then the sources."""

        def fmt(value, unit="", digits=4):
            return "n/a" if value is None else f"{value:.{digits}g}{unit}"

        operations = ", ".join(f"{kind} {value:.3g}" for kind, value in self.operations_per_second_per_channel.items()) or "none counted"
        lines = [
            f"### Hardware report: {self.codec.get('id', '?')} ({self.num_channels} ch, {self.sampling_frequency:g} Hz, {self.adc_bits}-bit ADC)",
            "",
            f"- raw bitrate: {fmt(self.raw_bits_per_second / 1e6, ' Mbit/s')}; compressed: "
            f"{fmt(None if self.compressed_bits_per_second is None else self.compressed_bits_per_second / 1e6, ' Mbit/s')} "
            f"(ratio vs ADC {fmt(self.compression_ratio_vs_adc, 'x')}); link share {fmt(self.link_bits_per_second / 1e6, ' Mbit/s')} "
            f"-> {fmt(None if self.link_share is None else 100 * self.link_share, '% used')}",
            f"- encoder operations per second per channel: {operations} (event rate {self.event_rate_hz_per_channel:g} Hz/ch for per-spike costs)",
            f"- parameters: {self.parameter_count} at {self.weight_bits} bit = {fmt(self.parameter_memory_bytes / 1024, ' kB')}; "
            f"buffers {fmt(self.buffer_memory_bytes / 1024, ' kB')}",
            f"- estimated power per channel: compute {fmt(self.compute_power_uW_per_channel, ' uW')}, memory "
            f"{fmt(self.memory_power_uW_per_channel, ' uW')}, radio {fmt(self.radio_power_uW_per_channel, ' uW')}; "
            f"1024 channels: {fmt(self.power_mW_1024ch, ' mW')}",
            f"- algorithmic latency {fmt(self.algorithmic_latency_ms, ' ms')} (event window {fmt(self.window_ms, ' ms')}); "
            f"host: {fmt(self.host_realtime_factor, 'x real time')}, {fmt(self.host_chunk_latency_ms, ' ms')} per chunk, "
            f"{fmt(self.host_event_processing_ms, ' ms')} per event; latency after the window "
            f"{fmt(self.latency_after_window_ms, ' ms')}",
            "",
            self.verdict_table(),
            "",
            f"Energy model: {self.energy_model['name']} ({self.energy_model['node_nm']} nm, scale {self.energy_model['energy_scale']:g}): "
            f"{self.energy_model['source']}. Radio: {self.energy_model['radio_energy_pJ_per_bit']:.3g} pJ/bit, "
            f"{self.energy_model['radio_reference']}. Budget: {self.budget['source']}.",
        ]
        if self.notes:
            lines.append(f"Counting: {self.notes}")
        return "\n".join(lines)

    def plot(self, ax=None):
        """Bars of each budget's use (value / limit, log scale), green when within the limit.

        Returns
        -------
        ax : matplotlib.axes.Axes
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 2.2))
        names, fractions, colors = [], [], []
        for row in self.verdicts:
            names.append(row["name"])
            fraction = np.nan if row["value"] is None else row["value"] / row["limit"]
            fractions.append(fraction)
            colors.append({True: "tab:green", False: "tab:red", None: "tab:gray"}[row["pass"]])
        positions = np.arange(len(names))
        ax.barh(positions, np.nan_to_num(fractions, nan=0.0), color=colors)
        ax.axvline(1.0, color="k", linestyle="--", linewidth=1)
        ax.set_yticks(positions, names)
        ax.set_xscale("log")
        ax.set_xlabel("share of the budget (1 = limit)")
        ax.set_title(f"{self.codec.get('id', '?')}: {self.budget['name']} budget", fontsize=9)
        return ax


def hardware_report(
    codec,
    num_channels: int,
    sampling_frequency: float,
    adc_bits: int | None = None,
    compressed_nbytes: int | None = None,
    duration_s: float | None = None,
    encode_time_s: float | None = None,
    num_chunks: int | None = None,
    event_rate_hz_per_channel: float | None = None,
    event_processing_s: float | None = None,
    weight_bits: int | None = None,
    floating_point: bool = False,
    budget: Budget = N1_BUDGET,
    energy_model: EnergyModel = HOROWITZ_45NM,
) -> HardwareReport:
    """Build the hardware report of ``codec`` for a recording configuration and a measured run.

    Parameters
    ----------
    codec : Codec | str | dict
        The codec (or its registry name / config).
    num_channels, sampling_frequency :
        The recording's configuration.
    adc_bits : int | None, default: None
        ADC bit depth for the raw bitrate; None for 16.
    compressed_nbytes : int | None, default: None
        Real bytes the codec produced for ``duration_s`` seconds of all channels (container
        included). None leaves the bitrate, radio power and link verdict undecided.
    duration_s : float | None
        Duration those bytes cover.
    encode_time_s : float | None, default: None
        Measured host encoding time of those ``duration_s`` seconds.
    num_chunks : int | None, default: None
        Chunks encoded, for the per-chunk host latency.
    event_rate_hz_per_channel : float | None, default: None
        Detected events (spikes) per second per channel, for per-spike operation counts; None uses
        10 Hz when the codec has per-spike costs.
    event_processing_s : float | None, default: None
        Measured host seconds to code one event once its window has closed (the per-event stages'
        time over the events); added to the latency after the window.
    weight_bits : int | None, default: None
        Precision of stored parameters and of arithmetic; None for the codec's ``parameter_bits``
        (16 when it declares none).
    floating_point : bool, default: False
        Price arithmetic as floating point of ``weight_bits`` instead of integer.
    budget : Budget, default: N1_BUDGET
    energy_model : EnergyModel, default: HOROWITZ_45NM

    Returns
    -------
    report : HardwareReport
    """
    from spikeinterface_vqcompress.core.registry import get_codec
    from spikeinterface_vqcompress.core.codec import Codec

    codec_object = codec if isinstance(codec, Codec) else get_codec(codec)
    num_channels = int(num_channels)
    sampling_frequency = float(sampling_frequency)
    if num_channels < 1 or not sampling_frequency > 0:
        raise ValueError("hardware_report needs at least one channel and a positive sampling frequency")
    profile = codec_object.hardware_profile(num_channels=num_channels, sampling_frequency=sampling_frequency)
    adc_bits = int(adc_bits or 16)
    weight_bits = int(weight_bits or profile.parameter_bits or 16)
    if event_rate_hz_per_channel is None:
        event_rate_hz_per_channel = 10.0 if profile.operations_per_spike else 0.0

    raw_bps = num_channels * sampling_frequency * adc_bits
    compressed_bps = None
    if compressed_nbytes is not None and duration_s:
        compressed_bps = 8.0 * compressed_nbytes / float(duration_s)
    link_bps = budget.link_share_bits_per_second(num_channels)

    operations = {}
    for kind, count in profile.operations_per_sample.items():
        operations[kind] = operations.get(kind, 0.0) + float(count) * sampling_frequency
    for kind, count in profile.operations_per_spike.items():
        operations[kind] = operations.get(kind, 0.0) + float(count) * event_rate_hz_per_channel

    parameter_memory = profile.parameter_count * weight_bits / 8.0
    buffer_memory = profile.buffer_samples_per_channel * num_channels * math.ceil(adc_bits / 8.0)
    memory_bytes = max(parameter_memory + buffer_memory, 1.0)

    compute_pJ = sum(
        count * energy_model.operation_pJ(kind, bits=weight_bits, floating_point=floating_point)
        for kind, count in operations.items() if kind != "memory_access"
    )
    memory_pJ = operations.get("memory_access", 0.0) * energy_model.sram_access_pJ(memory_bytes)
    compute_uW = compute_pJ * 1e-6  # pJ/s -> uW
    memory_uW = memory_pJ * 1e-6
    radio_uW = None if compressed_bps is None else compressed_bps / num_channels * energy_model.radio_energy_pJ_per_bit * 1e-6
    power_uW = None if radio_uW is None else compute_uW + memory_uW + radio_uW
    power_mW_1024 = None if power_uW is None else power_uW * budget.reference_channels / 1000.0

    latency_ms = 1000.0 * profile.algorithmic_latency_samples / sampling_frequency
    if profile.algorithmic_latency_chunks:
        if not (duration_s and num_chunks):
            raise ValueError(
                f"{codec_object.codec_id} buffers whole chunks before coding: give duration_s and num_chunks "
                "so that the report can turn its latency into time"
            )
        latency_ms += 1000.0 * profile.algorithmic_latency_chunks * float(duration_s) / int(num_chunks)
    window_ms = 1000.0 * profile.window_samples / sampling_frequency
    event_ms = None if event_processing_s is None else 1000.0 * float(event_processing_s)
    after_window_ms = latency_ms - window_ms + (event_ms or 0.0)
    realtime = None
    chunk_latency = None
    if encode_time_s and duration_s:
        realtime = float(duration_s) / float(encode_time_s)
        if num_chunks:
            chunk_latency = 1000.0 * float(encode_time_s) / int(num_chunks)

    power_limit_uW_per_channel = budget.max_power_mW * 1000.0 / budget.reference_channels
    verdicts = [
        {"name": f"{budget.name} link (<= {budget.link_bits_per_second / 1e6:g} Mbit/s per {budget.reference_channels} ch)",
         "value": None if compressed_bps is None else compressed_bps / num_channels * budget.reference_channels / 1e6,
         "limit": budget.link_bits_per_second / 1e6, "unit": "Mbit/s",
         "pass": None if compressed_bps is None else bool(compressed_bps <= link_bps)},
        {"name": f"{budget.name} latency (<= {budget.max_latency_ms:g} ms"
                 + (f" after a {window_ms:.3g} ms event window{', processing included' if event_ms is not None else ''})"
                    if window_ms else ")"),
         "value": after_window_ms, "limit": budget.max_latency_ms, "unit": "ms",
         "pass": bool(after_window_ms <= budget.max_latency_ms)},
        {"name": f"{budget.name} power incl. radio (<= {budget.max_power_mW:g} mW per {budget.reference_channels} ch)",
         "value": power_mW_1024, "limit": budget.max_power_mW, "unit": "mW",
         "pass": None if power_uW is None else bool(power_uW <= power_limit_uW_per_channel)},
    ]
    return HardwareReport(
        codec=codec_object.get_config(),
        num_channels=num_channels,
        sampling_frequency=sampling_frequency,
        adc_bits=adc_bits,
        raw_bits_per_second=raw_bps,
        compressed_bits_per_second=compressed_bps,
        compression_ratio_vs_adc=None if not compressed_bps else raw_bps / compressed_bps,
        link_bits_per_second=link_bps,
        link_share=None if compressed_bps is None else compressed_bps / link_bps,
        operations_per_second_per_channel=operations,
        event_rate_hz_per_channel=float(event_rate_hz_per_channel),
        parameter_count=int(profile.parameter_count),
        weight_bits=weight_bits,
        parameter_memory_bytes=parameter_memory,
        buffer_memory_bytes=float(buffer_memory),
        compute_power_uW_per_channel=compute_uW,
        memory_power_uW_per_channel=memory_uW,
        radio_power_uW_per_channel=radio_uW,
        power_uW_per_channel=power_uW,
        power_mW_1024ch=power_mW_1024,
        algorithmic_latency_ms=latency_ms,
        host_realtime_factor=realtime,
        host_chunk_latency_ms=chunk_latency,
        window_ms=window_ms,
        host_event_processing_ms=event_ms,
        latency_after_window_ms=after_window_ms,
        verdicts=verdicts,
        budget=asdict(budget),
        energy_model=energy_model.to_dict(),
        notes=profile.notes,
    )
