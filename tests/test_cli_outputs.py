"""Issue 30: the command line's outputs never look complete unless they are, and every input format goes in
and comes back out exactly (real files, real processes: ``python -m spikeinterface_vqcompress.cli``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SAMPLING_FREQUENCY_HZ = 30000.0
NUM_CHANNELS = 4
NUM_SAMPLES = 6000


def run_cli(*arguments, cwd=None) -> subprocess.CompletedProcess:
    """Run ``vqcompress ARGUMENTS`` in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "spikeinterface_vqcompress.cli", *map(str, arguments)],
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str):
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def listing(folder: Path) -> list[str]:
    """Every name in ``folder``, hidden ones included."""
    return sorted(path.name for path in folder.iterdir())


def traces(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.cumsum(rng.normal(size=(NUM_SAMPLES, NUM_CHANNELS)), axis=0) * 3 + rng.normal(size=(NUM_SAMPLES, NUM_CHANNELS)) * 8).astype(np.int16)


@pytest.fixture(scope="module")
def containers(tmp_path_factory):
    """A good .vqc of 4 chunks and a copy with one flipped byte in its last chunk's payload."""
    from spikeinterface.core import NumpyRecording

    from spikeinterface_vqcompress.core.container import ContainerReader
    from spikeinterface_vqcompress.recording import write_compressed

    folder = tmp_path_factory.mktemp("containers")
    good = folder / "good.vqc"
    recording = NumpyRecording([traces()], sampling_frequency=SAMPLING_FREQUENCY_HZ)
    write_compressed(recording, good, codec="flac", chunk_duration_s=0.05, progress_bar=False)
    reader = ContainerReader(good)
    assert reader.num_chunks == 4
    _, _, offset, nbytes, _ = reader.chunks[0][-1]
    data = bytearray(good.read_bytes())
    data[offset + nbytes // 2] ^= 0x10
    bad = folder / "bad.vqc"
    bad.write_bytes(bytes(data))
    return good, bad


@pytest.mark.parametrize("command", [
    ["decompress", "--format", "binary"],
    ["decompress", "--format", "binary", "--n-jobs", "2"],
    ["decompress", "--format", "zarr"],
    ["decompress", "--format", "binary_folder"],
    ["decompress", "--format", "wav"],
    ["decode"],
])
def test_a_damaged_container_leaves_no_output(containers, tmp_path, command):
    _, bad = containers
    name = {"zarr": "out.zarr", "wav": "out.wav", "binary_folder": "out"}.get(command[-1], "out.bin")
    if command[0] == "decode":
        name = "out.wav"
    result = run_cli(command[0], bad, tmp_path / name, *command[1:], *(["--no-progress"] if command[0] == "decompress" else []))
    assert_one_line_error(result, "CRC mismatch in chunk 3", "damaged")
    assert result.returncode == 2
    assert listing(tmp_path) == []  # neither the output nor a temporary


def test_outputs_of_a_good_container_read_back_and_replace_atomically(containers, tmp_path):
    from spikeinterface_vqcompress.readers import load_recording

    good, _ = containers
    expected = traces()
    assert run_cli("decompress", good, tmp_path / "rebuilt", "--format", "zarr", "--no-progress").returncode == 0
    assert run_cli("decompress", good, tmp_path / "folder", "--format", "binary_folder", "--no-progress").returncode == 0
    np.testing.assert_array_equal(load_recording(tmp_path / "rebuilt.zarr").get_traces(), expected)
    np.testing.assert_array_equal(load_recording(tmp_path / "folder").get_traces(), expected)
    # an existing folder is refused, then replaced whole with --overwrite
    (tmp_path / "rebuilt.zarr" / "stray").write_text("old")
    assert_one_line_error(run_cli("decompress", good, tmp_path / "rebuilt.zarr", "--format", "zarr"), "exists; pass --overwrite")
    assert run_cli("decompress", good, tmp_path / "rebuilt.zarr", "--format", "zarr", "--overwrite", "--no-progress").returncode == 0
    assert not (tmp_path / "rebuilt.zarr" / "stray").exists()
    np.testing.assert_array_equal(load_recording(tmp_path / "rebuilt.zarr").get_traces(), expected)
    assert listing(tmp_path) == ["folder", "rebuilt.zarr"]


def test_compress_refuses_an_existing_output_its_input_and_a_directory(tmp_path):
    raw = tmp_path / "in.raw"
    traces().tofile(raw)
    options = ["--sampling-frequency", SAMPLING_FREQUENCY_HZ, "--num-channels", NUM_CHANNELS, "--dtype", "int16",
               "--no-progress"]
    output = tmp_path / "a.vqc"
    assert run_cli("compress", raw, output, "--codec", "archive", *options).returncode == 0
    archived = output.read_bytes()
    assert_one_line_error(run_cli("compress", raw, output, "--codec", "wavpack:bps=2.25", *options), "a.vqc exists; pass --overwrite")
    assert output.read_bytes() == archived
    # the command: a lossless archive silently replaced by a lossy one; refused even with --overwrite
    for arguments in (["compress", output, output, "--codec", "wavpack:bps=2.25"],
                      ["compress", output, output, "--codec", "wavpack:bps=2.25", "--overwrite"],
                      ["compress", output, "a.vqc", "--overwrite"]):  # the same file by a relative path
        assert_one_line_error(run_cli(*arguments, cwd=tmp_path), "is the input", "even with --overwrite")
        assert output.read_bytes() == archived
    folder = tmp_path / "folder"
    folder.mkdir()
    for overwrite in ([], ["--overwrite"]):
        assert_one_line_error(run_cli("compress", raw, folder, *options, *overwrite), "is a directory")
    assert listing(folder) == [] and listing(tmp_path) == ["a.vqc", "folder", "in.raw"]
    # --overwrite replaces an output that is not the input
    assert run_cli("compress", raw, output, "--codec", "flac", "--overwrite", *options).returncode == 0
    assert output.read_bytes() != archived
    assert listing(tmp_path) == ["a.vqc", "folder", "in.raw"]


def test_headerless_binary_needs_its_options_and_a_consistent_size(tmp_path):
    raw = tmp_path / "in.dat"
    traces().tofile(raw)
    result = run_cli("compress", raw, tmp_path / "a.vqc")
    assert_one_line_error(result, "headerless binary", "--sampling-frequency, --num-channels, --dtype")
    assert "Traceback" not in result.stderr and "load_recording(" not in result.stderr
    assert_one_line_error(run_cli("compress", raw, tmp_path / "a.vqc", "--sampling-frequency", 30000, "--num-channels", 4),
                          "give --dtype")
    assert_one_line_error(run_cli("compress", raw, tmp_path / "a.vqc", "--sampling-frequency", 30000, "--num-channels", 7,
                                  "--dtype", "int16"), "not a whole number of samples of 7 channels")
    assert_one_line_error(run_cli("compress", raw, tmp_path / "a.vqc", "--sampling-frequency", 30000, "--num-channels", 4,
                                  "--dtype", "int17"), "--dtype 'int17'")
    assert listing(tmp_path) == ["in.dat"]


def test_raw_file_round_trips_byte_exactly_and_a_header_is_skipped(tmp_path):
    raw = tmp_path / "in.raw"
    traces(1).tofile(raw)
    options = ["--sampling-frequency", SAMPLING_FREQUENCY_HZ, "--num-channels", NUM_CHANNELS, "--dtype", "int16",
               "--no-progress"]
    assert run_cli("compress", raw, tmp_path / "a.vqc", "--codec", "archive", *options).returncode == 0
    result = run_cli("decompress", tmp_path / "a.vqc", tmp_path / "back.raw", "--format", "binary", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "back.raw").read_bytes() == raw.read_bytes()
    # a 64-byte header before the samples
    with_header = tmp_path / "headed.bin"
    with_header.write_bytes(b"H" * 64 + raw.read_bytes())
    assert run_cli("compress", with_header, tmp_path / "h.vqc", "--codec", "archive", "--offset-bytes", 64, *options).returncode == 0
    assert run_cli("decompress", tmp_path / "h.vqc", tmp_path / "h.dat", "--no-progress").returncode == 0
    assert (tmp_path / "h.dat").read_bytes() == raw.read_bytes()


def test_wav_file_compresses_and_comes_back_as_wav(tmp_path):
    from scipy.io import wavfile

    wav = tmp_path / "in.wav"
    wavfile.write(wav, 20000, traces(2))
    assert run_cli("compress", wav, tmp_path / "w.vqc", "--codec", "archive", "--no-progress").returncode == 0
    assert run_cli("decompress", tmp_path / "w.vqc", tmp_path / "back.wav", "--format", "wav").returncode == 0
    rate, samples = wavfile.read(tmp_path / "back.wav")
    assert rate == 20000
    np.testing.assert_array_equal(samples, traces(2))
    assert_one_line_error(run_cli("compress", wav, tmp_path / "x.vqc", "--num-channels", 4), "--num-channels is for headerless")


def _spikeglx_pair(folder: Path, stream: str) -> tuple[Path, np.ndarray]:
    """A small SpikeGLX .bin/.meta pair: ``nidq`` (4 analog channels) or ``imec0.ap`` (4 AP channels + sync)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    if stream == "nidq":
        samples = (rng.normal(size=(3000, 4)) * 200).astype(np.int16)
        lines = ["fileName=D:/data/run_g0_t0.nidq.bin", "niAiRangeMax=5", "niAiRangeMin=-5", "niMAGain=1", "niMNGain=200",
                 "niSampRate=30000", "niXDChans1=", "snsMnMaXaDw=0,0,4,0", "snsSaveChanSubset=all", "typeThis=nidq",
                 "~snsChanMap=(0,0,4,0,0)(XA0;0:0)(XA1;1:1)(XA2;2:2)(XA3;3:3)"]
    else:
        samples = (rng.normal(size=(3000, 5)) * 200).astype(np.int16)
        lines = ["fileName=D:/data/run_g0_t0.imec0.ap.bin", "imAiRangeMax=0.6", "imAiRangeMin=-0.6", "imDatPrb_pn=NP1000",
                 "imDatPrb_type=0", "imSampRate=30000", "snsApLfSy=4,0,1", "snsSaveChanSubset=0:3,768", "typeThis=imec",
                 "~imroTbl=(0,384)" + "".join(f"({channel} 0 0 500 250 1)" for channel in range(4)),
                 "~snsChanMap=(4,0,1)(AP0;0:0)(AP1;1:1)(AP2;2:2)(AP3;3:3)(SY0;768:768)",
                 "~snsShankMap=(1,2,480)(0:0:0:1)(0:1:0:1)(0:0:1:1)(0:1:1:1)"]
    binary = folder / f"run_g0_t0.{stream}.bin"
    samples.tofile(binary)
    lines += [f"fileSizeBytes={samples.nbytes}", "fileSHA1=" + __import__("hashlib").sha1(samples.tobytes()).hexdigest().upper(),
              f"fileTimeSecs={samples.shape[0] / 30000:.6f}", "firstSample=0", f"nSavedChans={samples.shape[1]}"]
    binary.with_suffix(".meta").write_text("".join(f"{line}\n" for line in sorted(lines)))
    return binary, samples


def test_spikeglx_file_comes_back_with_its_meta_when_every_channel_was_kept(tmp_path):
    from spikeinterface_vqcompress.readers import load_recording

    source, _ = _spikeglx_pair(tmp_path / "source", "nidq")
    assert run_cli("compress", source, tmp_path / "nidq.vqc", "--codec", "archive", "--no-progress").returncode == 0
    output = tmp_path / "rebuilt" / source.name
    result = run_cli("decompress", tmp_path / "nidq.vqc", output, "--no-progress")
    assert result.returncode == 0, result.stderr
    assert output.read_bytes() == source.read_bytes()
    assert output.with_suffix(".meta").read_text() == source.with_suffix(".meta").read_text()  # same size, time, SHA1
    original, rebuilt = load_recording(source), load_recording(output)
    np.testing.assert_array_equal(rebuilt.get_traces(), original.get_traces())
    np.testing.assert_allclose(rebuilt.get_channel_gains(), original.get_channel_gains())
    assert list(rebuilt.channel_ids) == list(original.channel_ids)

    # a Neuropixels stream as SpikeInterface reads it lacks the sync channel: the file, but no .meta, and why
    source, samples = _spikeglx_pair(tmp_path / "imec", "imec0.ap")
    assert run_cli("compress", source, tmp_path / "imec.vqc", "--codec", "archive", "--no-progress").returncode == 0
    output = tmp_path / "rebuilt_imec" / source.name
    result = run_cli("decompress", tmp_path / "imec.vqc", output, "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "note: no .meta written" in result.stdout and "SY0" in result.stdout
    assert listing(output.parent) == [source.name]
    np.testing.assert_array_equal(np.fromfile(output, dtype=np.int16).reshape(-1, 4), samples[:, :4])


def test_the_next_compress_sweeps_the_temporaries_of_dead_writers(tmp_path):
    from spikeinterface_vqcompress.core.container import temporary_name_parts

    raw = tmp_path / "in.raw"
    traces().tofile(raw)
    target = tmp_path / "a.vqc"
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    prefix, suffix = temporary_name_parts(target)
    host = suffix.split("@", 1)[1]
    dead = tmp_path / f"{prefix}deadbeef.{dead_pid}@{host}"
    alive = tmp_path / f"{prefix}a1b2c3d4.{os.getpid()}@{host}"  # this test process: still running
    dead.write_bytes(b"x" * 1000)
    alive.write_bytes(b"x" * 1000)
    result = run_cli("compress", raw, target, "--sampling-frequency", 30000, "--num-channels", 4, "--dtype", "int16",
                     "--no-progress")
    assert result.returncode == 0, result.stderr
    assert not dead.exists() and alive.exists() and target.is_file()


def test_one_file_formats_refuse_a_recording_they_cannot_hold_before_writing(tmp_path):
    from spikeinterface.core import NumpyRecording

    from spikeinterface_vqcompress.outputs import OutputError, write_recording_output

    two_segments = NumpyRecording([traces(), traces(1)], sampling_frequency=SAMPLING_FREQUENCY_HZ)
    for format_name, message in (("binary", "holds 2 segments; use --format binary_folder or zarr"),
                                 ("wav", "holds 2 segments; a WAV file holds one")):
        with pytest.raises(OutputError, match=message):
            write_recording_output(two_segments, tmp_path / f"out.{format_name}", format=format_name, progress_bar=False)
    floats = NumpyRecording([traces().astype(np.float32)], sampling_frequency=SAMPLING_FREQUENCY_HZ)
    with pytest.raises(OutputError, match="float32 samples; WAV output needs int16"):
        write_recording_output(floats, tmp_path / "out.wav", format="wav")
    assert listing(tmp_path) == []
    written = write_recording_output(two_segments, tmp_path / "both", format="binary_folder", progress_bar=False)
    assert written["paths"] == [tmp_path / "both"] and listing(tmp_path) == ["both"]
