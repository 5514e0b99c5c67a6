"""Helpers shared by the ``vqcompress`` sub-commands (the main parser and the commands of
:mod:`.broadband`, :mod:`.esort` and :mod:`.spike_cae`)."""

from __future__ import annotations

from pathlib import Path


def load_with_ground_truth(path):
    """A MEArec file gives its ground truth; any other recording comes without."""
    from spikeinterface_vqcompress.readers import guess_format, load_recording

    if guess_format(path) == "mearec":
        from spikeinterface_vqcompress.groundtruth import load_ground_truth

        return load_ground_truth(path)
    return load_recording(path), None


def training_output_and_recordings(args, **simulate_kwargs):
    """The ``.pt`` output and the training recordings of a ``vqcompress train ...`` command.

    Checks ``--output`` (a ``.pt`` file, not overwritten without ``--overwrite``) and
    ``--recordings``; with ``--seeds`` instead, simulates (once, in ``--work-folder``) one MEArec
    recording per seed with ``--probe``, ``--num-units`` and ``--duration-s`` (+ ``simulate_kwargs``).
    Errors exit with a message that names the fix.
    """
    output = Path(args.output)
    if output.suffix != ".pt":
        raise SystemExit(f"error: --output must end in .pt (a model card .json is written next to it), got {output}")
    if output.exists() and not args.overwrite:
        raise SystemExit(f"error: {output} exists; pass --overwrite to replace it")
    recordings = existing_paths(args.recordings, "recordings")
    if not recordings:
        if not args.seeds:
            raise SystemExit("error: give training data: --recordings FILE.h5 ... or --seeds S ... to simulate MEArec "
                             "recordings (use seeds that you will not evaluate on)")
        recordings = [simulated_training_recording(args, seed, **simulate_kwargs) for seed in args.seeds]
    return output, recordings


def existing_paths(paths, what: str) -> list[Path]:
    """``paths`` as ``Path`` objects; exits naming every one that does not exist (``what``: their kind)."""
    paths = [Path(path) for path in paths or []]
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise SystemExit(f"error: {what} not found: {', '.join(missing)}")
    return paths


def simulated_training_recording(args, seed: int, suffix: str = "", **simulate_kwargs) -> Path:
    """Simulate (once, in ``--work-folder``) the MEArec training recording of ``seed`` for a train command.

    ``suffix`` names a variant of it (``"_clean"`` with ``noise_level_uV=0``: its noise-free twin).
    """
    from spikeinterface_vqcompress.groundtruth import simulate_recording

    work = Path(args.work_folder)
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"train_{args.probe}_seed{seed}_{args.num_units}units_{int(args.duration_s)}s{suffix}.h5"
    if not path.exists():
        print(f"simulating {path} (templates seed {seed})", flush=True)
        simulate_recording(path, probe=args.probe, num_units=args.num_units, duration_s=args.duration_s, seed=seed,
                           fallback="never", **simulate_kwargs)
    return path
