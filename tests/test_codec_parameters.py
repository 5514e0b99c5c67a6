"""Codec parameters: every codec built from a config has its names, types and ranges checked, and a
bad value gets one line naming the codec, the parameter, the value and what is accepted (issue 30,
item 7). The check is :func:`spikeinterface_vqcompress.core.codec.check_parameters`, run by
``Codec.from_config`` (so by ``get_codec``, a container's header and the CLI); the ranges are each
constructor's own.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from spikeinterface_vqcompress.core.codec import Codec, check_parameters, codec_parameters, describe_parameters
from spikeinterface_vqcompress.core.container import ContainerReader
from spikeinterface_vqcompress.core.registry import available_codecs, get_codec, get_codec_class

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.vqc")), ids=lambda path: path.name)
def test_every_committed_container_config_still_builds(path):
    config = ContainerReader(path).header["codec"]
    codec = get_codec(config)
    assert codec.codec_id == config["id"]


def test_legacy_names_and_informational_keys_are_read():
    config = ContainerReader(FIXTURES / "codec_spike_cae.vqc").header["codec"]
    assert config["threshold"] == 4.5 and config["background"] == "synthesised"  # written before 0.2
    codec = get_codec(config)
    assert codec.params["threshold_sd"] == 4.5 and "threshold" not in codec.params
    assert get_codec(codec.get_config()).get_config() == codec.get_config()
    assert get_codec("spike-cae", threshold=5).params["threshold_sd"] == 5.0
    with pytest.raises(ValueError, match="give 'threshold_sd' only; 'threshold' is its earlier name"):
        get_codec("spike-cae", threshold=5, threshold_sd=4)


@pytest.mark.parametrize("codec_id", available_codecs())
def test_a_misspelt_name_is_named_with_the_closest_and_every_parameter(codec_id):
    parameters, _ = codec_parameters(get_codec_class(codec_id))
    first = parameters[0].name
    misspelt = first[:-1] + "x" + first[-1]
    with pytest.raises(ValueError) as error:
        get_codec(codec_id, **{misspelt: 1})
    message = str(error.value)
    assert message.startswith(f"codec '{codec_id}' has no parameter '{misspelt}'; did you mean '{first}'? Parameters: ")
    assert "\n" not in message
    for parameter in parameters:  # every name with its default
        assert parameter.describe() in message


def test_the_issue_examples():
    with pytest.raises(ValueError) as error:
        get_codec("broadband", max_error="abc")
    assert str(error.value) == "codec 'broadband': parameter 'max_error' must be an int (default 0), got 'abc'"
    with pytest.raises(ValueError, match=r"'max_error' must be an int \(default 0\), got 2.5, which is not a whole number"):
        get_codec("broadband", max_error=2.5)  # refused, not truncated to 2
    with pytest.raises(ValueError) as error:
        get_codec("broadband", max_eror=3)
    assert str(error.value) == (
        "codec 'broadband' has no parameter 'max_eror'; did you mean 'max_error'? Parameters: max_error (int, default 0), "
        "lpc_order (int, default 32), stages (list of [int, int] or None, default None), noise_fill (bool, default False), "
        "spike_error (int or None, default None), spike_threshold (float, default 3.5), spike_before (int, default 30), "
        "spike_after (int, default 60), spike_spread (float, default 0.0), lowpass_background (bool, default False), bits_per_sample (float or None, default None), "
        "noise_neighbours (int, default 0)")
    with pytest.raises(ValueError, match="codec 'broadband' has no parameter 'max_eror'; did you mean 'max_error'"):
        get_codec("storage", max_eror=3)  # through a preset: the codec it resolves to is named


def test_types_are_converted_only_when_nothing_is_lost():
    config = get_codec("broadband", max_error=2.0).get_config()
    assert config["max_error"] == 2 and type(config["max_error"]) is int
    assert get_codec("broadband", max_error=np.int64(3)).get_config()["max_error"] == 3
    assert get_codec("broadband", max_error="3").get_config()["max_error"] == 3  # a number written as text
    assert get_codec("wavpack", bps=3).get_config()["bps"] == 3.0 and get_codec("wavpack", bps=None).lossless
    with pytest.raises(ValueError, match="'bps' must be a number or None \\(default None\\), got 'abc'"):
        get_codec("wavpack", bps="abc")
    with pytest.raises(ValueError, match="got nan, which is not a finite number"):
        get_codec("wavpack", bps=float("nan"))
    with pytest.raises(ValueError, match="'level' must be an int \\(default 5\\), got True, which is true/false"):
        get_codec("zstd", level=True)
    with pytest.raises(ValueError, match="'stages' must be a list of \\[int, int\\] or None.*got \\[\\[4, 2.5\\]\\], "
                                         "whose item \\[4, 2.5\\] is not \\[int, int\\]"):
        get_codec("broadband", stages=[[4, 2.5]])
    assert get_codec("broadband", stages=((4, 6.0),)).get_config()["stages"] == [[4, 6]]
    with pytest.raises(ValueError, match="'channel_locations' must be a list of lists of float or None"):
        get_codec("spike-cae", model="identity", channel_locations=[[0, 0], [0, "x"]])


def test_bool_parameters_take_true_or_false():
    # check_parameters alone: vqcae-hybrid's constructor would load its model
    cls = get_codec_class("vqcae-hybrid")
    assert check_parameters(cls, {"post_filter": "false"}) == {"post_filter": False}
    assert check_parameters(cls, {"post_filter": True, "model_sha256": None}) == {"post_filter": True, "model_sha256": None}
    with pytest.raises(ValueError, match="codec 'vqcae-hybrid': parameter 'post_filter' must be true or false "
                                         "\\(default True\\), got 'yes'"):
        check_parameters(cls, {"post_filter": "yes"})


@pytest.mark.parametrize("codec_id, params, message", [
    ("zstd", {"level": 0}, "codec 'zstd': parameter 'level' must be between 1 and 22"),
    ("flac", {"level": 9}, "codec 'flac': parameter 'level' must be between 0 and 8"),
    ("flac", {"channel_chunk_size": 3}, "codec 'flac': parameter 'channel_chunk_size' must be between 1 and 2"),
    ("wavpack", {"level": 5}, "codec 'wavpack': parameter 'level' must be between 1 and 4"),
    ("wavpack", {"bps": 1.5}, "codec 'wavpack': parameter 'bps' .* needs bps >= 2.0 and <= 24.0, got 1.5; use bps=None"),
    ("wavpack", {"bps": 30}, "codec 'wavpack': parameter 'bps' .* needs bps >= 2.0 and <= 24.0, got 30"),
    ("bit-truncation", {"num_bits": 13}, "codec 'bit-truncation': parameter 'num_bits' must be between 0 and 12"),
    ("bit-truncation", {"level": -1}, "codec 'bit-truncation': parameter 'level' must be between 0 and 8"),
    ("broadband", {"max_error": -1}, "codec 'broadband': parameter 'max_error' must be between 0 and 4096 stored units "
                                     "\\(0 is lossless\\), got -1"),
    ("broadband", {"lpc_order": 65}, "codec 'broadband': parameter 'lpc_order' must be between 0 and 64"),
    ("broadband", {"stages": [[4, 25]]}, "codec 'broadband': parameter 'stages' holds \\[order, rate\\] pairs with order "
                                         "between 1 and 64 and rate between 1 and 24, got \\[4, 25\\]"),
    ("broadband", {"stages": [[4, 6]] * 9}, "codec 'broadband': parameter 'stages' takes at most 8 adaptive stages, got 9"),
    ("broadband-rvq", {"num_stages": 0}, "codec 'broadband-rvq': parameter 'num_stages' must be between 1 and \\d+ "
                                         "\\(the RVQ stages model 'broadband_rvq_mearec' was trained with\\), got 0"),
    ("spike-cae", {"paste": "both"}, "codec 'spike-cae': parameter 'paste' must be one of 'auto', 'add', 'replace', got 'both'"),
    ("spike-cae", {"threshold_sd": 0}, "codec 'spike-cae': parameter 'threshold_sd' must be > 0 noise standard deviations"),
    ("spike-cae", {"ar_order": 33}, "codec 'spike-cae': parameter 'ar_order' must be between 0 and 32"),
    ("spike-cae", {"footprint_groups": 0}, "codec 'spike-cae': parameter 'footprint_groups' must be >= 1"),
    ("spike-cae", {"exclude_sweep_samples": -1}, "codec 'spike-cae': parameter 'exclude_sweep_samples' must be >= 0 samples"),
    ("spike-cae", {"snippet_samples": 64, "trough_sample": 64},
     "codec 'spike-cae': parameter 'trough_sample' must be between 0 and 63 or None \\(a sample inside the snippet\\)"),
    ("spike-cae", {"gain_to_uV": 0}, "codec 'spike-cae': parameter 'gain_to_uV' must be a non-zero number"),
    ("spike-cae", {"background_samples": 0}, "codec 'spike-cae': parameter 'background_samples' must be >= 1"),
])
def test_out_of_range_values_name_codec_parameter_and_range(codec_id, params, message):
    with pytest.raises(ValueError, match=message) as error:
        get_codec({"id": codec_id, **params})
    assert "\n" not in str(error.value)


def test_every_codec_parameter_has_a_precise_type():
    for codec_id in available_codecs():  # a parameter without a known type is listed as "name (default ...)"
        listing = describe_parameters(get_codec_class(codec_id))
        assert "any value" not in listing and "(default" not in listing, (codec_id, listing)


def test_third_party_codecs_are_checked_from_their_signature():
    class Scaled(Codec):
        codec_id = "test-scaled"

        def __init__(self, factor=2, offset: float = 0.0, *, name: str):
            super().__init__(factor=factor, offset=offset, name=name)

    class Moded(Codec):
        codec_id = "test-moded"

        def __init__(self, mode: Literal["fast", "small"] = "fast"):
            super().__init__(mode=mode)

    class Open(Codec):
        codec_id = "test-open"

        def __init__(self, level: int = 1, **extra):
            super().__init__(level=level, **extra)

    assert Scaled.from_config({"id": "test-scaled", "factor": 3.0, "name": "a"}).params["factor"] == 3
    with pytest.raises(ValueError, match="'factor' must be an int \\(default 2\\), got 2.5"):  # type from the default
        Scaled.from_config({"factor": 2.5, "name": "a"})
    with pytest.raises(ValueError, match="codec 'test-scaled' needs the parameter name \\(str, required\\)"):
        Scaled.from_config({})
    assert Moded.from_config({"mode": "small"}).params["mode"] == "small"
    with pytest.raises(ValueError, match="codec 'test-moded': parameter 'mode' must be one of 'fast', 'small' "
                                         "\\(default 'fast'\\), got 'tiny'"):
        Moded.from_config({"mode": "tiny"})
    assert describe_parameters(Moded) == "mode ('fast' or 'small', default 'fast')"
    assert Open.from_config({"level": 2.0, "anything": [1]}).params == {"level": 2, "anything": [1]}
    assert describe_parameters(Open) == "level (int, default 1) (and any other name)"


@pytest.mark.filterwarnings("ignore:The extractor is not serializable")
def test_the_cli_prints_one_line_for_a_bad_parameter(tmp_path):
    from spikeinterface.core import NumpyRecording

    traces = (np.arange(4000) % 97 - 48).astype(np.int16).reshape(1000, 4)
    recording = NumpyRecording(traces, sampling_frequency=1000.0)
    recording.save(folder=tmp_path / "input", format="binary", verbose=False)
    output = tmp_path / "out.vqc"
    result = subprocess.run([sys.executable, "-m", "spikeinterface_vqcompress.cli", "compress", str(tmp_path / "input"),
                             str(output), "--codec", "broadband:max_error=abc"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines == ["error: codec 'broadband': parameter 'max_error' must be an int (default 0), got 'abc'"], result.stderr
    assert "Traceback" not in result.stderr and not output.exists()


def test_configs_are_json_values_after_the_check():
    config = get_codec("broadband", max_error=np.float64(4.0), lpc_order="16").get_config()
    assert json.loads(json.dumps(config)) == config == {"id": "broadband", "max_error": 4, "lpc_order": 16, "stages": None}
