"""The ``vqcompress`` command.

::

    vqcompress demo                                 # the main job on a built-in simulated recording
    vqcompress simulate OUT.h5 --probe Neuronexus-32 --num-units 10 --duration-s 30
    vqcompress compress IN OUT.vqc --codec wavpack --param bps=2.25
    vqcompress decompress IN.vqc OUT --format binary
    vqcompress evaluate RECORDING.h5 --codec flac --codec wavpack:bps=2.25 --sorter tridesclous2 --seeds 0
    vqcompress info FILE.vqc [--verify]
    vqcompress codecs
    vqcompress study CONFIG.yaml [--scheduler ADDRESS] [--report]   # the sorting-impact grid on Dask (resumable)
    vqcompress report STUDY_FOLDER [--screenshot PAGE.png]           # static HTML report of a study
    vqcompress encode IN.wav OUT.vqc --codec vqcae-hybrid        # a WAV file (int16) into a container
    vqcompress decode IN.vqc OUT.wav                             # back to WAV, original sampling rate
    vqcompress eval FOLDER --codec vqcae-hybrid [--output DIR]   # ratio, verification, metrics, plots
"""

from __future__ import annotations

import argparse
import signal
import threading
import json
import sys
import time
import warnings
from pathlib import Path

from spikeinterface_vqcompress.cli.common import load_with_ground_truth
from spikeinterface_vqcompress.console import QuietConsole
from spikeinterface_vqcompress.core.registry import PRESETS

# Modules that add commands of their own: each defines ``add_cli_commands(commands, trainers)``, where
# ``commands`` is the top-level sub-parser set and ``trainers`` the one under ``vqcompress train``.
CLI_EXTENSIONS = (
    "spikeinterface_vqcompress.cli.broadband",
    "spikeinterface_vqcompress.cli.esort",
    "spikeinterface_vqcompress.cli.spike_cae",
)

DEMO_CODECS = [
    {"id": "zstd"},
    {"id": "flac"},
    {"id": "wavpack"},
    {"id": "wavpack", "bps": 2.25},
    {"id": "bit-truncation", "num_bits": 5},
    {"id": "broadband"},                     # ours, lossless
    {"id": "broadband", "max_error": 8},     # ours, near-lossless
    dict(PRESETS["implant"].config),  # spike codewords learned on the probe
]


def _parse_value(text: str):
    if text.lower() == "none":  # Python's spelling of JSON's null (residual_step=None, bandpass_hz=None)
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_codec_argument(text: str, extra_params: list[str] | None = None) -> dict:
    """``"wavpack:bps=2.25,level=3"`` (+ ``--param k=v``) -> ``{"id": "wavpack", "bps": 2.25, "level": 3}``."""
    from spikeinterface_vqcompress.core.registry import get_codec

    name, _, rest = text.partition(":")
    params = {}
    items = [item for item in rest.split(",") if item] + list(extra_params or [])
    for item in items:
        key, separator, value = item.partition("=")
        if not separator:
            raise SystemExit(f"error: codec parameter '{item}' must look like name=value (e.g. bps=2.25)")
        params[key.strip().replace("-", "_")] = _parse_value(value.strip())
    try:
        return get_codec(name, **params).get_config()
    except (ValueError, TypeError) as error:
        raise SystemExit(f"error: {error}") from None


def _job_kwargs(args) -> dict:
    return {"n_jobs": args.n_jobs, "progress_bar": not args.no_progress}


def _add_job_arguments(parser):
    parser.add_argument("--n-jobs", type=int, default=1, help="parallel workers for encoding and sorting (default: 1)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _codec_parameters(cls) -> str:
    """``name=default, ...`` of a codec class's constructor (its parameters, in order)."""
    import inspect

    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    shown = []
    for parameter in parameters:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        default = "(required)" if parameter.default is parameter.empty else repr(parameter.default)
        shown.append(f"{parameter.name}={default}")
    return ", ".join(shown) if shown else "(none)"


def command_codecs(args):
    import textwrap

    from spikeinterface_vqcompress.core.registry import available_codecs, available_presets, get_codec_class

    def wrapped(text, indent, hanging=0):
        return textwrap.fill(text, width=100, initial_indent=" " * indent, subsequent_indent=" " * (indent + hanging))

    print('Presets: a preset is a codec name too (--codec storage, compress(recording, codec="storage"))\n')
    for name, preset in available_presets().items():
        config = dict(preset.config)
        resolved = config.pop("id") + ("" if not config else ":" + ",".join(f"{key}={value}" for key, value in config.items()))
        print(f"  {name:10s} -> {resolved}")
        print(wrapped(preset.purpose, 17))
        print(wrapped(f"measured: {preset.measured}", 17, 10))
    print("\nCodecs: --codec NAME:parameter=value,...\n")
    for name in available_codecs():
        cls = get_codec_class(name)
        print(wrapped(f"{name:16s} {'lossless' if cls.lossless else 'lossy/option':12s} {cls.description}", 2, 30))
        print(wrapped(f"parameters: {_codec_parameters(cls)}", 19, 12))


def command_simulate(args):
    from spikeinterface_vqcompress.groundtruth import simulate_recording

    path = simulate_recording(
        args.output, probe=args.probe, num_units=args.num_units, duration_s=args.duration_s,
        noise_level_uV=args.noise_level_uV, drift=args.drift, seed=args.seed,
        num_templates_per_cell=args.num_templates_per_cell, cell_models=args.cell_models, fallback=args.fallback, verbose=True,
    )
    print(f"wrote {path}")


# Options of `compress` that describe a headerless binary input: (attribute, option, reader keyword).
_RAW_INPUT_OPTIONS = (
    ("sampling_frequency", "--sampling-frequency", "sampling_frequency"),
    ("num_channels", "--num-channels", "num_channels"),
    ("dtype", "--dtype", "dtype"),
    ("offset_bytes", "--offset-bytes", "file_offset"),
    ("gain_to_uV", "--gain-to-uV", "gain_to_uV"),
    ("offset_to_uV", "--offset-to-uV", "offset_to_uV"),
)
_RAW_INPUT_REQUIRED = ("--sampling-frequency", "--num-channels", "--dtype")


def _checked_output(output, overwrite: bool, inputs, folder: bool = False) -> Path:
    """The output path after the rules every writing command follows (one-line error otherwise)."""
    from spikeinterface_vqcompress.outputs import OutputError, check_output_path

    try:
        return check_output_path(output, overwrite=overwrite, folder=folder, inputs=inputs)
    except OutputError as error:
        raise SystemExit(f"error: {error}") from None


def _input_recording(args):
    """``compress``'s input as a recording: any format ``load_recording`` reads (headerless binary with the
    ``--sampling-frequency --num-channels --dtype`` options). Returns ``(recording, format_name)``."""
    from spikeinterface_vqcompress.readers import guess_format, load_recording, normalize_format_name, supported_formats

    path = Path(args.input)
    if "://" not in args.input and not path.exists():
        raise SystemExit(f"error: {path} does not exist")
    if args.input_format is not None:
        format_name = normalize_format_name(args.input_format)
        if format_name not in supported_formats():
            raise SystemExit(f"error: unknown --input-format {args.input_format!r}; use one of: "
                             f"{', '.join(supported_formats())}")
    else:
        format_name = guess_format(path) if "://" not in args.input else None
        if format_name is None:
            raise SystemExit(f"error: cannot tell the recording format of {path} from its name; pass --input-format "
                             f"NAME (one of: {', '.join(supported_formats())})")
    given = {option: getattr(args, attribute) for attribute, option, _ in _RAW_INPUT_OPTIONS
             if getattr(args, attribute) is not None}
    kwargs = {}
    if format_name == "binary" and path.is_file():
        missing = [option for option in _RAW_INPUT_REQUIRED if option not in given]
        if missing:
            raise SystemExit(f"error: {path} is a headerless binary file: give {', '.join(missing)} "
                             "(e.g. --sampling-frequency 30000 --num-channels 32 --dtype int16; --offset-bytes N skips "
                             "a header of N bytes)")
        import numpy as np

        try:
            np.dtype(args.dtype)
        except TypeError:
            raise SystemExit(f"error: --dtype {args.dtype!r} is not a sample type; use e.g. int16, uint16, int32 or "
                             "float32") from None
        if args.sampling_frequency <= 0 or args.num_channels <= 0 or (args.offset_bytes or 0) < 0:
            raise SystemExit("error: --sampling-frequency and --num-channels must be positive and --offset-bytes "
                             "not negative")
        kwargs = {keyword: getattr(args, attribute) for attribute, _, keyword in _RAW_INPUT_OPTIONS
                  if getattr(args, attribute) is not None}
    elif given:
        raise SystemExit(f"error: {', '.join(given)} {'is' if len(given) == 1 else 'are'} for headerless binary files "
                         f"(.raw/.dat/.bin) only; {path} is read as {format_name}, whose header gives the sampling rate, "
                         "channels and sample type")
    try:
        return load_recording(path, format=format_name, **kwargs), format_name
    except Exception as error:  # any reader's failure on a user's file: one line naming the file and the format
        message = str(error).splitlines()[0] if str(error) else ""
        if not isinstance(error, ValueError):
            message = f"{type(error).__name__}: {message}" if message else type(error).__name__
        hint = "" if args.input_format else " (pass --input-format NAME if the guess is wrong)"
        raise SystemExit(f"error: cannot read {path} as {format_name}: {message}{hint}") from None


def command_compress(args):
    from spikeinterface_vqcompress.recording import write_compressed

    output = _checked_output(args.output, args.overwrite, inputs=[args.input])
    codec = parse_codec_argument(args.codec, args.param)
    recording, format_name = _input_recording(args)
    chunk_duration_s = args.chunk_duration_s  # None: the codec's default (1 s; 10 s for spike-vq)
    if chunk_duration_s is None:
        if format_name == "wav":  # as `encode` does: the whole file up to 60 s, else ~10 s aligned to the codec
            from spikeinterface_vqcompress.core.registry import get_codec
            from spikeinterface_vqcompress.evaluation.wav_evaluation import chunk_duration_for

            chunk_duration_s = chunk_duration_for(get_codec(codec), recording.get_num_samples(0), recording.sampling_frequency)
    t0 = time.perf_counter()
    container = write_compressed(recording, output, codec=codec, chunk_duration_s=chunk_duration_s,
                                 adc_bits=args.adc_bits, **_job_kwargs(args))
    elapsed = time.perf_counter() - t0
    print(f"wrote {output}: {container.encoded_nbytes:,} bytes, ratio {container.compression_ratio:.3f} "
          f"({container.bits_per_sample:.3f} bits/sample) in {elapsed:.1f} s with {codec}")


def _write_output(args, format_name: str):
    """Decode the container ``args.input`` into ``args.output`` as ``format_name``, atomically."""
    from spikeinterface_vqcompress.outputs import OutputError, output_target, write_recording_output
    from spikeinterface_vqcompress.recording import read_compressed

    target = output_target(args.output, format_name)
    _checked_output(target, args.overwrite, inputs=[args.input], folder=format_name in ("zarr", "binary_folder"))
    recording = read_compressed(args.input)
    job_kwargs = _job_kwargs(args) if hasattr(args, "n_jobs") else {"progress_bar": False}
    try:
        written = write_recording_output(recording, target, format=format_name, overwrite=args.overwrite,
                                         inputs=[args.input], **job_kwargs)
    except OutputError as error:
        raise SystemExit(f"error: {error}") from None
    return recording, written


def command_decompress(args):
    recording, written = _write_output(args, args.format)
    paths = written["paths"]
    print(f"wrote {paths[0]} ({args.format}): {recording.get_num_channels()} channels x {recording.get_dtype()}, "
          f"{recording.get_total_duration():.2f} s" + "".join(f"; {path}" for path in paths[1:]))
    if written["note"]:
        print(f"note: {written['note']}")


def command_info(args):
    from spikeinterface_vqcompress.recording import read_compressed

    recording = read_compressed(args.input)
    header = recording.container_header
    info = {
        "file": str(Path(args.input).absolute()),
        "format_version": ".".join(map(str, recording._reader.format_version)),
        "codec": header["codec"],
        "lossless": header.get("lossless"),
        "model_sha256": header.get("model_sha256"),
        "num_channels": header["num_channels"],
        "sampling_frequency": header["sampling_frequency"],
        "dtype": header["dtype"],
        "segments": header["segments"],
        "num_chunks": recording._reader.num_chunks,
        "encoded_nbytes": recording.encoded_nbytes,
        "raw_nbytes": recording.raw_nbytes,
        "compression_ratio": round(recording.compression_ratio, 4),
        "bits_per_sample": round(recording.bits_per_sample, 4),
        "adc_bits": header.get("adc_bits"),
        "compression_ratio_vs_adc": recording.compression_ratio_vs_adc(),
        "has_probe": header.get("probe") is not None,
        "hardware_profile": recording.codec.hardware_profile(header["num_channels"], header["sampling_frequency"]).to_dict(),
    }
    report = recording.hardware_report()
    info["hardware_report"] = report.to_dict()
    if args.verify:
        recording._reader.verify()
        info["verified"] = "every chunk CRC32 matches"
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            if key not in ("hardware_profile", "hardware_report"):
                print(f"{key:26s} {value}")
        print()
        print(report.to_markdown())


def _print_and_save(results, output_folder, metadata):
    from spikeinterface_vqcompress.evaluation import format_table, save_results

    json_path, markdown_path = save_results(results, output_folder, metadata=metadata)
    print()
    print(format_table(results))
    print(f"\nreport: {markdown_path}\n        {json_path}")


def command_evaluate(args):
    from spikeinterface_vqcompress.evaluation import evaluate_codecs

    codecs = [parse_codec_argument(text) for text in (args.codec or ["flac"])]
    recording, gt_sorting = load_with_ground_truth(args.input)
    sorter = None if args.no_sort else args.sorter
    if gt_sorting is None and sorter is not None:
        print("note: this recording has no ground truth; reporting ratio and fidelity only (use a MEArec file to score sorting)")
        sorter = None
    log_path = Path(args.output) / "evaluate.log"
    with QuietConsole(log_path, enabled=not args.verbose, progress_bar=False if args.no_progress else None) as console:
        console.say(f"evaluating {len(codecs)} codec(s) on {args.input}" + (f", sorting with {sorter}" if sorter else "")
                    + ("" if args.verbose else f" (details: {log_path})"))
        steps = len(codecs) + (1 if sorter is not None else 0)
        with console.steps(total=steps, desc="evaluate") as step:
            results = evaluate_codecs(recording, gt_sorting, codecs, sorter=sorter, seeds=args.seeds, output_folder=args.output,
                                      adc_bits=args.adc_bits, reuse_raw_sorting_if_exact=not args.sort_exact, progress=step,
                                      n_jobs=args.n_jobs, progress_bar=bool(args.verbose and not args.no_progress))
    _print_and_save(results, args.output, {"recording": str(args.input), "sorter": sorter, "seeds": args.seeds})


def command_demo(args):
    from spikeinterface_vqcompress.evaluation import evaluate_codecs
    from spikeinterface_vqcompress.groundtruth import load_ground_truth, simulate_recording

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    log_path = output / "demo.log"
    t0 = time.perf_counter()
    codecs = DEMO_CODECS if not args.codec else [parse_codec_argument(text) for text in args.codec]
    with QuietConsole(log_path, enabled=not args.verbose, progress_bar=False if args.no_progress else None) as console:
        if not args.verbose:
            console.say(f"the simulator's and the sorters' output goes to {log_path}")
        console.say(f"[1/3] simulating a {args.duration_s:.0f} s {args.probe} MEArec recording with {args.num_units} units "
                    f"(seed {args.seed}); templates: the shipped library, or NEURON once (cached) for others")
        recording_path = simulate_recording(output / "demo_recording.h5", probe=args.probe, num_units=args.num_units,
                                            duration_s=args.duration_s, seed=args.seed,
                                            num_templates_per_cell=args.num_templates_per_cell, cell_models=args.cell_models,
                                            n_jobs=args.n_jobs, verbose=True)
        recording, gt_sorting = load_ground_truth(recording_path)
        simulated_s = time.perf_counter() - t0
        console.say(f"      simulated in {simulated_s:.0f} s")
        console.say(f"[2/3] compressing with {len(codecs)} codecs, rebuilding from the real bytes and sorting with "
                    f"{args.sorter} (seed {args.sorter_seed})")
        with warnings.catch_warnings(), console.steps(total=len(codecs) + 1, desc="      sort raw + codecs") as step:
            # SpikeInterface's internal notices (template peak sign, provenance of temporary objects) are noise here
            warnings.simplefilter("ignore", UserWarning)
            results = evaluate_codecs(recording, gt_sorting, codecs, sorter=args.sorter, seeds=[args.sorter_seed],
                                      output_folder=output / "work", adc_bits=16, reuse_raw_sorting_if_exact=True,
                                      n_jobs=args.n_jobs, progress_bar=False, progress=step)
    print("[3/3] report")  # after the console: the table and the report's paths go to the terminal
    metadata = {
        "recording": str(recording_path),
        "probe": args.probe,
        "num_units": args.num_units,
        "duration_s": args.duration_s,
        "templates": recording.get_annotation("vqcompress_groundtruth", {}).get("templates_source")
        if isinstance(recording.get_annotation("vqcompress_groundtruth"), dict) else None,
        "sorter": f"{args.sorter} seed={args.sorter_seed}",
        "lossless rows": "verified bit-exact: the input to the sorter is identical, so the raw sorting is reused "
                         "(sorting again would only measure the sorter's run-to-run variation)",
        "simulation_s": round(simulated_s, 1),
        "total_s": round(time.perf_counter() - t0, 1),
    }
    _print_and_save(results, output, metadata)


def command_encode(args):
    from spikeinterface_vqcompress.core.registry import get_codec
    from spikeinterface_vqcompress.evaluation.wav_evaluation import chunk_duration_for, read_wav, traces_to_recording
    from spikeinterface_vqcompress.recording import write_compressed

    output = _checked_output(args.output, args.overwrite, inputs=[args.input])
    codec = get_codec(parse_codec_argument(args.codec, args.param))
    try:
        sampling_frequency, traces = read_wav(args.input)
    except (TypeError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    chunk_duration_s = args.chunk_duration_s or chunk_duration_for(codec, traces.shape[0], sampling_frequency)
    recording = traces_to_recording(traces, sampling_frequency)
    t0 = time.perf_counter()
    container = write_compressed(recording, output, codec=codec.get_config(), chunk_duration_s=chunk_duration_s,
                                 adc_bits=args.adc_bits, progress_bar=False)
    elapsed = time.perf_counter() - t0
    wav_nbytes = Path(args.input).stat().st_size
    print(f"wrote {output}: {container.encoded_nbytes:,} bytes from {wav_nbytes:,} WAV bytes, ratio "
          f"{wav_nbytes / container.encoded_nbytes:.2f}x ({container.bits_per_sample:.4f} bits/sample) in {elapsed:.2f} s "
          f"with {codec.codec_id}{'' if codec.lossless else ' (lossy)'}")


def command_decode(args):
    recording, written = _write_output(args, "wav")
    print(f"wrote {written['paths'][0]}: {recording.get_num_samples(0):,} samples x {recording.get_num_channels()} "
          f"channel(s) at {int(round(recording.sampling_frequency))} Hz")


def command_eval(args):
    from spikeinterface_vqcompress.core.registry import get_codec
    from spikeinterface_vqcompress.evaluation.wav_evaluation import evaluate_wav_files, format_summary_table

    codec = get_codec(parse_codec_argument(args.codec, args.param))
    folder = Path(args.folder)
    if folder.is_file():
        files = [folder]
    else:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is neither a folder of WAV files nor a WAV file")
        files = sorted(folder.glob(args.pattern))
    if args.files_from:
        names = {line.strip() for line in Path(args.files_from).read_text().splitlines() if line.strip()}
        files = [path for path in files if path.name in names]
    if args.held_out_only:
        training_files = set(getattr(codec, "training_files", []) or [])
        if not training_files:
            print(f"note: codec {codec.codec_id} has no training files on record; every file is kept")
        files = [path for path in files if path.name not in training_files]
    if args.max_files:
        files = files[: args.max_files]
    if not files:
        raise FileNotFoundError(f"no files matching {args.pattern} in {folder} (after the selection options)")
    output = Path(args.output) if args.output else Path("vqcompress_output") / "eval" / codec.codec_id
    report = evaluate_wav_files(files, codec, output_folder=output, plots=not args.no_plots,
                                log=None if args.quiet else print)
    print()
    print(format_summary_table(report))
    print("\nwrote " + "\n      ".join(report["output_files"]))


def command_study(args):
    from spikeinterface_vqcompress.study import load_study_config, run_study

    config = load_study_config(args.config)
    output = Path(args.output) if args.output else Path("vqcompress_output") / "study" / config.get("name", Path(args.config).stem)
    table = run_study(config, output, scheduler=args.scheduler, n_workers=args.n_workers, max_cells=args.max_cells,
                      retry_failed=args.retry_failed)
    print(f"\n{len(table)} finished cells; table: {output / 'results.csv'}")
    if args.report:
        from spikeinterface_vqcompress.report import build_report

        print(f"report: {build_report(output)}")


def command_report(args):
    from spikeinterface_vqcompress.report import build_report, screenshot

    path = build_report(args.study, output=args.output)
    print(f"report: {path}")
    if args.screenshot:
        print(f"screenshot: {screenshot(path, args.screenshot)}")


def build_parser() -> argparse.ArgumentParser:
    from spikeinterface_vqcompress._version import __version__

    parser = argparse.ArgumentParser(
        prog="vqcompress",
        description="Compress extracellular recordings and measure what it costs spike sorting.",
        epilog="Run 'vqcompress demo' for the built-in end-to-end example; 'vqcompress COMMAND --help' for each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser("demo", help="simulate, compress with the baselines and our codecs, sort, score and report",
                               description="The main job: a small MEArec ground-truth recording compressed with each "
                               "registered codec, rebuilt from the real bytes, sorted and scored.")
    demo.add_argument("--output", default="vqcompress_output/demo", help="output folder (default: %(default)s)")
    demo.add_argument("--probe", default="Neuronexus-32")
    demo.add_argument("--num-units", type=int, default=10)
    demo.add_argument("--duration-s", type=float, default=30.0)
    demo.add_argument("--seed", type=int, default=0, help="simulation seed")
    demo.add_argument("--num-templates-per-cell", type=int, default=10, help="NEURON templates per cell model (default: %(default)s)")
    demo.add_argument("--cell-models", nargs="+", default=None, help="subset of MEArec's 13 BBP cell models (default: all)")
    demo.add_argument("--sorter", default="tridesclous2")
    demo.add_argument("--sorter-seed", type=int, default=0)
    demo.add_argument("--codec", action="append", help="codec to run instead of the default set (repeatable), e.g. wavpack:bps=2.25")
    demo.add_argument("--verbose", action="store_true", help="print the simulator's and the sorters' output instead of logging it to OUTPUT/demo.log")
    _add_job_arguments(demo)
    demo.set_defaults(function=command_demo, n_jobs=2)

    simulate = commands.add_parser("simulate", help="simulate a MEArec ground-truth recording (.h5)")
    simulate.add_argument("output", help="MEArec .h5 file to write")
    simulate.add_argument("--probe", default="Neuronexus-32", help="Neuronexus-32, Neuropixels-64, Neuropixels-128, tetrode, ...")
    simulate.add_argument("--num-units", type=int, default=10)
    simulate.add_argument("--duration-s", type=float, default=30.0)
    simulate.add_argument("--noise-level-uV", type=float, default=10.0)
    simulate.add_argument("--drift", action="store_true")
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--num-templates-per-cell", type=int, default=None)
    simulate.add_argument("--cell-models", nargs="+", default=None, help="subset of MEArec's 13 BBP cell models (default: all)")
    simulate.add_argument("--fallback", choices=["auto", "never", "always"], default="auto",
                          help="use SpikeInterface templates if NEURON cannot run (default: auto, announced)")
    simulate.set_defaults(function=command_simulate)

    compress = commands.add_parser(
        "compress", help="compress any recording (every format load_recording reads, .wav, headerless .raw/.dat/.bin) "
        "into a .vqc container",
        description="Compress a recording into a .vqc container, written under a temporary name and published only "
        "when complete. The input is any format SpikeInterface/Neo reads (guessed from the path), a SpikeInterface "
        "folder, zarr, a .vqc, a PCM .wav file, or a headerless .raw/.dat/.bin file described by --sampling-frequency "
        "--num-channels --dtype.")
    compress.add_argument("input", help="the recording: a file or folder SpikeInterface/Neo reads (format guessed from "
                          "the path), a .wav file, or a headerless .raw/.dat/.bin file (give --sampling-frequency, "
                          "--num-channels, --dtype)")
    compress.add_argument("output", help="the .vqc file to write (atomically; never the input)")
    compress.add_argument("--codec", default="flac", help="codec or preset name, optionally with parameters: "
                          "wavpack:bps=2.25, archive (default: %(default)s)")
    compress.add_argument("--param", action="append", default=[], help="codec parameter name=value (repeatable)")
    compress.add_argument("--input-format", default=None, help="reader name when it cannot be guessed from the path, "
                          "e.g. spikeglx, openephys, intan, binary, wav (an unknown name lists them all)")
    compress.add_argument("--chunk-duration-s", type=float, default=None,
                          help="container chunk duration in seconds, the unit of random access (default: the codec's, "
                          "1.0, or 10 for spike-vq and spike-pca; for a .wav file, the whole file up to 60 s, as 'encode' does)")
    compress.add_argument("--adc-bits", type=int, default=None, help="ADC bit depth, recorded in the container for the "
                          "ratio against the ADC")
    raw = compress.add_argument_group("headerless binary input (.raw/.dat/.bin)")
    raw.add_argument("--sampling-frequency", type=float, default=None, help="sampling rate in Hz")
    raw.add_argument("--num-channels", type=int, default=None, help="number of interleaved channels")
    raw.add_argument("--dtype", default=None, help="sample type: int16, uint16, int32, float32, ...")
    raw.add_argument("--offset-bytes", type=int, default=None, help="bytes of header before the first sample (default: 0)")
    raw.add_argument("--gain-to-uV", type=float, default=None, help="microvolts per sample unit (optional)")
    raw.add_argument("--offset-to-uV", type=float, default=None, help="microvolts added after the gain (optional)")
    compress.add_argument("--overwrite", action="store_true", help="replace an existing output (never the input)")
    _add_job_arguments(compress)
    compress.set_defaults(function=command_compress)

    decompress = commands.add_parser(
        "decompress", help="rebuild a .vqc container as one plain binary file, a binary folder, zarr or WAV",
        description="Decode a .vqc container into an output written under a temporary name and published only when "
        "every chunk decoded: a damaged container leaves nothing behind. --format binary writes ONE plain file of "
        "interleaved samples in the stored dtype (what SpikeGLX/CatGT and Kilosort read), plus a SpikeGLX .meta "
        "beside a .bin when the source was a SpikeGLX file holding exactly these channels.")
    decompress.add_argument("input", help="the .vqc container")
    decompress.add_argument("output", help="the file (binary, wav) or folder (binary_folder, zarr) to write")
    decompress.add_argument("--format", choices=["binary", "binary_folder", "zarr", "wav"], default="binary",
                            help="binary: one plain interleaved file (.bin/.dat/.raw); binary_folder: a SpikeInterface "
                            "binary folder; zarr: a SpikeInterface zarr folder (.zarr appended if missing); wav: 16-bit "
                            "PCM, one segment (default: %(default)s)")
    decompress.add_argument("--overwrite", action="store_true", help="replace an existing output (never the input)")
    _add_job_arguments(decompress)
    decompress.set_defaults(function=command_decompress)

    evaluate = commands.add_parser("evaluate", help="compress, rebuild, sort and score against ground truth")
    evaluate.add_argument("input", help="a MEArec .h5 (ground truth) or any recording (fidelity only)")
    evaluate.add_argument("--codec", action="append", help="codec[:name=value,...] (repeatable; default: flac)")
    evaluate.add_argument("--sorter", default="tridesclous2")
    evaluate.add_argument("--seeds", type=int, nargs="+", default=[0])
    evaluate.add_argument("--no-sort", action="store_true", help="ratio and fidelity only")
    evaluate.add_argument("--sort-exact", action="store_true", help="sort lossless reconstructions too instead of reusing the raw sorting")
    evaluate.add_argument("--adc-bits", type=int, default=None)
    evaluate.add_argument("--output", default="vqcompress_output/evaluate")
    evaluate.add_argument("--verbose", action="store_true", help="print the sorters' output instead of logging it to OUTPUT/evaluate.log")
    _add_job_arguments(evaluate)
    evaluate.set_defaults(function=command_evaluate)

    info = commands.add_parser("info", help="describe a .vqc container")
    info.add_argument("input")
    info.add_argument("--verify", action="store_true", help="check every chunk's CRC32")
    info.add_argument("--json", action="store_true")
    info.set_defaults(function=command_info)

    encode = commands.add_parser("encode", help="compress a WAV file (int16, mono or multichannel) into a .vqc container")
    encode.add_argument("input", help="WAV file, 16-bit PCM (e.g. a Neuralink N1 file)")
    encode.add_argument("output", help="the .vqc container to write (atomically)")
    encode.add_argument("--codec", default="flac", help="codec name, optionally with parameters: vqcae-hybrid, wavpack:bps=2.25")
    encode.add_argument("--param", action="append", default=[], help="codec parameter name=value (repeatable)")
    encode.add_argument("--chunk-duration-s", type=float, default=None,
                        help="container chunk duration (default: the whole file up to 60 s, else ~10 s aligned to the codec's segments)")
    encode.add_argument("--adc-bits", type=int, default=None, help="ADC bit depth, recorded in the container (10 for N1 files)")
    encode.add_argument("--overwrite", action="store_true", help="replace an existing output (never the input)")
    encode.set_defaults(function=command_encode)

    decode = commands.add_parser("decode", help="rebuild a WAV file from a .vqc container (original sampling rate)")
    decode.add_argument("input", help="a .vqc container (one segment, int16)")
    decode.add_argument("output", help="the WAV file to write (atomically: nothing is left if a chunk is damaged)")
    decode.add_argument("--overwrite", action="store_true", help="replace an existing output (never the input)")
    decode.set_defaults(function=command_decode)

    evaluation = commands.add_parser("eval", help="ratio, verification, metric suite and plots of a codec on a folder of WAV files",
                                     description="Compress every WAV file through the container, rebuild it from the bytes, verify "
                                     "it (bit-exact for lossless codecs, maximum error otherwise) and report the total-bytes ratio, "
                                     "SNR, PSNR (signal peak and full scale), MSE, SSIM, spike-window SNDR and spike-detection "
                                     "precision/recall, with histograms and a waveform plot.")
    evaluation.add_argument("folder", help="folder of WAV files (or one WAV file)")
    evaluation.add_argument("--codec", default="flac", help="codec name, optionally with parameters")
    evaluation.add_argument("--param", action="append", default=[], help="codec parameter name=value (repeatable)")
    evaluation.add_argument("--output", default=None, help="report folder (default: vqcompress_output/eval/CODEC)")
    evaluation.add_argument("--pattern", default="*.wav", help="file name pattern (default: %(default)s)")
    evaluation.add_argument("--files-from", default=None, help="text file listing the file names to use (one per line)")
    evaluation.add_argument("--max-files", type=int, default=None, help="only the first N files (sorted by name)")
    evaluation.add_argument("--held-out-only", action="store_true",
                            help="leave out the files the codec's model was trained on (from its model card)")
    evaluation.add_argument("--no-plots", action="store_true")
    evaluation.add_argument("--quiet", action="store_true", help="no per-file lines")
    evaluation.set_defaults(function=command_eval)

    study = commands.add_parser("study", help="run (or resume) a sorting-impact study grid on Dask",
                                description="Recordings x codecs x rate points x sorters x seeds from a JSON/YAML config, on a "
                                "Dask LocalCluster or an existing scheduler. Finished cells are cached: running again resumes.")
    study.add_argument("config", help="study config (.json, .yaml)")
    study.add_argument("--output", default=None, help="study folder (default: vqcompress_output/study/NAME)")
    study.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler (default: a LocalCluster)")
    study.add_argument("--n-workers", type=int, default=2, help="LocalCluster worker processes (default: %(default)s)")
    study.add_argument("--max-cells", type=int, default=None, help="stop after N newly finished cells (resume later)")
    study.add_argument("--retry-failed", action="store_true",
                       help="run again the cells whose failure an earlier run recorded (skipped by default)")
    study.add_argument("--report", action="store_true", help="write the HTML report when done")
    study.set_defaults(function=command_study)

    report = commands.add_parser("report", help="static HTML report of a study folder (plots and tables embedded)")
    report.add_argument("study", help="a folder written by 'vqcompress study'")
    report.add_argument("--output", default=None, help="HTML file (default: STUDY/report.html)")
    report.add_argument("--screenshot", default=None, help="also render it in headless Chromium to this PNG")
    report.set_defaults(function=command_report)

    codecs = commands.add_parser("codecs", help="list the presets and the registered codecs with their parameters")
    codecs.set_defaults(function=command_codecs)

    train = commands.add_parser("train", help="train a model and write its weights and model card")
    trainers = train.add_subparsers(dest="model", metavar="MODEL")
    train.set_defaults(function=lambda args: train.print_help())
    import importlib

    for module_name in CLI_EXTENSIONS:
        importlib.import_module(module_name).add_cli_commands(commands, trainers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # the command as typed (model cards record it), also when main() is called with a list
    args.command_line = "vqcompress " + " ".join(sys.argv[1:] if argv is None else [str(item) for item in argv])
    if getattr(args, "function", None) is None:
        parser.print_help()
        return 1
    from spikeinterface_vqcompress.core.errors import CodecError

    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:  # SIGTERM unwinds like Ctrl-C, so that partial outputs are cleaned up
        previous_handler = signal.signal(signal.SIGTERM, _terminate)
    try:
        args.function(args)
    except (CodecError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interruption:
        signal_name = "SIGTERM" if isinstance(interruption, Terminated) else "Ctrl-C"
        print(f"error: interrupted ({signal_name}); partial outputs were removed", file=sys.stderr)
        return 143 if isinstance(interruption, Terminated) else 130
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_handler)
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that every ``finally`` and output clean-up runs."""


def _terminate(signal_number, frame):
    raise Terminated()


if __name__ == "__main__":
    sys.exit(main())
