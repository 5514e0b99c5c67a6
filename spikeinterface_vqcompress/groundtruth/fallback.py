"""Fallback templates from SpikeInterface's generator, for when NEURON cannot run.

:func:`_fallback_template_generator` builds a MEArec ``TemplateGenerator`` that MEArec's recording
generator accepts like a NEURON library. Using it is never silent: :func:`simulate_recording`
warns, logs an error and records ``"templates_source": "spikeinterface-fallback"`` in the file.
"""

from __future__ import annotations

import numpy as np

from spikeinterface_vqcompress.groundtruth.parameters import (
    DRIFT_TEMPLATE_PARAMETERS,
    TEMPLATES_SOURCE_FALLBACK,
    _load_mearec_default_parameters,
)


def _binary_cell_types(cell_names):
    from MEArec.tools import get_binary_cat

    cell_types = _load_mearec_default_parameters("recordings")["cell_types"]
    return get_binary_cat(np.asarray(cell_names), cell_types["excitatory"], cell_types["inhibitory"])


def _fallback_template_generator(probe, num_templates_per_cell, cell_models, seed, drift):
    """A MEArec ``TemplateGenerator`` filled with templates from ``spikeinterface.core.generate_templates``.

    The library mirrors the NEURON one: ``num_templates_per_cell`` templates per requested cell, an
    excitatory ("fallback_PC") or inhibitory ("fallback_BC", narrower spikes) label following the
    cell's class, 32 kHz, 2 ms before and 5 ms after the peak, positions 10-80 um off the probe
    plane and up to 30 um beyond its edges, peak amplitudes within MEArec's selection window.
    """
    import MEAutility as mu
    from spikeinterface.core.generate import generate_templates as si_generate_templates

    template_defaults = _load_mearec_default_parameters("templates")
    recording_defaults = _load_mearec_default_parameters("recordings")["templates"]
    dt_ms = float(template_defaults["dt"])
    cut_out_ms = [float(value) for value in template_defaults["cut_out"]]
    sampling_frequency = 1000.0 / dt_ms
    minimum_amplitude_uV = float(recording_defaults["min_amp"]) * 1.1
    maximum_amplitude_uV = float(recording_defaults["max_amp"]) * 0.95
    overhang_um = float(template_defaults["overhang"])
    distance_range_um = [float(value) for value in template_defaults["xlim"]]

    probe_information = mu.return_mea_info(probe)
    positions = np.asarray(mu.return_mea(probe).positions, dtype=float)
    spans = np.ptp(positions, axis=0)
    normal_axis = int(np.argmin(spans))
    plane_axes = [axis for axis in range(3) if axis != normal_axis]
    channel_locations = positions[:, plane_axes]
    plane_minimum = channel_locations.min(axis=0) - overhang_um
    plane_maximum = channel_locations.max(axis=0) + overhang_um

    binary_types = _binary_cell_types(cell_models)
    labels = []
    for binary_type in binary_types:
        labels += ["fallback_PC" if binary_type == "E" else "fallback_BC"] * num_templates_per_cell
    labels = np.array(labels)
    num_templates = len(labels)

    if drift:
        drift_steps = int(DRIFT_TEMPLATE_PARAMETERS["drift_steps"])
        drift_minimum_um, drift_maximum_um = DRIFT_TEMPLATE_PARAMETERS["drift_zlim"]
    else:
        drift_steps = 1
    rng = np.random.default_rng(seed)
    templates, locations = [], []
    for label in labels:
        for _attempt in range(10000):
            location = np.zeros(3)
            location[plane_axes] = rng.uniform(plane_minimum, plane_maximum)
            location[normal_axis] = rng.uniform(*distance_range_um)
            inhibitory = label == "fallback_BC"
            unit_parameters = {
                "alpha": rng.uniform(100.0, 500.0),
                "depolarization_ms": rng.uniform(0.09, 0.14),
                "repolarization_ms": rng.uniform(0.25, 0.4) if inhibitory else rng.uniform(0.5, 0.8),
                "recovery_ms": rng.uniform(0.6, 1.0) if inhibitory else rng.uniform(1.0, 1.5),
                "positive_amplitude": rng.uniform(0.1, 0.25),
                "smooth_ms": rng.uniform(0.03, 0.07),
                "spatial_decay": rng.uniform(10.0, 45.0),
                "propagation_speed": rng.uniform(250.0, 350.0),
                "ellipse_shrink": rng.uniform(0.4, 1.0),
                "ellipse_angle": rng.uniform(0.0, 2 * np.pi),
                "spatial_power": rng.uniform(1.5, 2.5),
            }
            if drift:
                drift_um = rng.uniform(drift_minimum_um, drift_maximum_um)
                steps = np.zeros((drift_steps, 3))
                steps[:, 2] = np.linspace(0.0, drift_um, drift_steps)
                unit_locations = location[np.newaxis, :] + steps
            else:
                unit_locations = location[np.newaxis, :]
            si_locations = np.column_stack(
                [unit_locations[:, plane_axes[0]], unit_locations[:, plane_axes[1]], unit_locations[:, normal_axis]]
            )
            waveforms = si_generate_templates(
                channel_locations,
                si_locations,
                sampling_frequency,
                cut_out_ms[0],
                cut_out_ms[1],
                seed=int(rng.integers(2**31)),
                dtype="float32",
                unit_params={name: np.full(len(si_locations), value) for name, value in unit_parameters.items()},
            )
            waveforms = np.transpose(waveforms, (0, 2, 1))  # (steps, channels, samples) as MEArec
            peak_uV = np.abs(waveforms.min(axis=(1, 2)))
            if np.all(peak_uV > minimum_amplitude_uV) and np.all(peak_uV < maximum_amplitude_uV):
                break
        else:
            raise RuntimeError(f"could not place a fallback template on {probe} within the amplitude window")
        templates.append(waveforms if drift else waveforms[0])
        locations.append(unit_locations if drift else unit_locations[0])

    from MEArec import TemplateGenerator

    parameters = dict(template_defaults)
    parameters.update(
        probe=probe,
        n=int(num_templates_per_cell),
        seed=int(seed),
        drifting=bool(drift),
        rot="norot",
        templates_source=TEMPLATES_SOURCE_FALLBACK,
        generator="spikeinterface.core.generate_templates",
    )
    if drift:
        parameters.update(DRIFT_TEMPLATE_PARAMETERS)
    template_dictionary = {
        "templates": np.asarray(templates, dtype="float32"),
        "locations": np.asarray(locations, dtype=float),
        "rotations": np.zeros((num_templates, 3)),
        "celltypes": labels,
    }
    return TemplateGenerator(
        temp_dict=template_dictionary, info={"params": parameters, "electrodes": probe_information}
    )
