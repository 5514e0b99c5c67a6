"""Where the spike CAE loses its SNDR: the vector quantiser against the autoencoder itself.

    python benchmarks/spike_cae_vq_cost.py             # writes results/spike_cae_vq_cost.{json,md}

For each shipped paper-shape model (4 channels x 64 samples) on the ground-truth snippets of the
held-out Neuronexus-32 seed-101 recording (the snippet benchmark's evaluation recording, the same
cut), three reconstructions of the same snippets, SNDR against the input and the clean snippet:

- ``quantised``: the shipped codec (encoder, nearest code vector, decoder);
- ``continuous``: the decoder fed the encoder's continuous latent, no quantisation (not codable:
  the bound the quantiser's loss is measured against);
- ``oracle codebook``: the codebook refitted by k-means on the continuous latents of the other half
  of this recording's snippets (``reduce_codebook`` at the same codebook size; encoder and decoder
  unchanged). An oracle: an implant cannot see the evaluation recording; it bounds what adapting the
  codebook to a new recording could buy.

Snippets are split in two halves by a seeded permutation; every figure is on the second half.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from common import RESULTS, cae_point, header_bytes_per_spike, snippets_of, write_results
from common import SNIPPET_EVALUATION as EVALUATION
from common import simulate_snippet_recording as simulate

MODELS = ["nn32-4x64-r2", "nn32-4x64-r3", "nn32-4x64-w128", "nn32-4x64-w128-r3", "nn32-4x64-c32", "nn32-4x64-d3"]


def continuous_reconstruction(model, snippets_uV, batch_size=2048):
    """Decoder output on the encoder's unquantised latent, in uV."""
    import torch

    model.eval()
    parts = []
    with torch.no_grad():
        for start in range(0, len(snippets_uV), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(snippets_uV[start:start + batch_size], dtype=np.float32))
            parts.append(model.decode_latent(model.encode_latent(batch)).numpy())
    return np.concatenate(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-snippets", type=int, default=2500)
    parser.add_argument("--models", nargs="*", default=MODELS)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    from spikeinterface_vqcompress.core.codecs.spike_cae.model import load_spike_cae, model_sha256, reduce_codebook
    from spikeinterface_vqcompress.training.spike_cae import extract_snippets, snippet_sndr_db
    from spikeinterface_vqcompress.groundtruth import load_ground_truth

    spec = next(spec for spec in EVALUATION if spec["name"] == "nn32_seed101")
    noisy_path, clean_path = simulate(spec, 10.0), simulate(spec, 0.0)
    clean_recording, _ = load_ground_truth(clean_path)
    clean_traces = np.asarray(clean_recording.get_traces(return_in_uV=True), dtype=np.float32)
    output = {"description": __doc__.split("\n\n")[0], "recording": spec, "models": {}}
    for name in args.models:
        model = load_spike_cae(name)
        extracted, keep = snippets_of(noisy_path, model, args.max_snippets)
        snippets = extracted["snippets_uV"][keep]
        clean = extract_snippets(clean_traces, extracted["sample_indices"][keep], extracted["channel_indices"][keep],
                                 model.num_samples, model.trough_sample)
        order = np.random.default_rng(0).permutation(len(snippets))
        fit, test = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2:])
        oracle = reduce_codebook(model, model.codebook_size, snippets[fit], seed=0)
        header, _ = header_bytes_per_spike(extracted["sample_indices"], clean_recording.get_num_channels())
        # the shipped codec through its real rANS bytes: size and the quantised SNDR
        coded = cae_point(model, snippets[test], clean[test], header)
        entry = {"model_sha256": model_sha256(model), "codes_per_spike": model.codes_per_spike, "codebook_size": model.codebook_size,
                 "num_test_snippets": int(len(test)), "num_fit_snippets": int(len(fit)),
                 "payload_bytes_per_spike": coded["payload_bytes_per_spike"],
                 "ratio_int16_with_times": coded["ratio_int16_with_times"],
                 "quantised": {key: coded[key] for key in ("sndr_input_db_mean", "sndr_clean_db_mean")}}
        reconstructions = {
            "continuous": continuous_reconstruction(model, snippets[test]),
            "oracle codebook": oracle.reconstruct(snippets[test]),
        }
        for kind, decoded in reconstructions.items():
            entry[kind] = {"sndr_input_db_mean": float(snippet_sndr_db(snippets[test], decoded).mean()),
                           "sndr_clean_db_mean": float(snippet_sndr_db(clean[test], decoded).mean())}
        output["models"][name] = entry
        print(name, json.dumps({k: v for k, v in entry.items() if isinstance(v, dict)}), flush=True)
    write_results(RESULTS, "spike_cae_vq_cost", output)
    lines = ["# Spike CAE: what the vector quantiser costs", "",
             "Generated by `benchmarks/spike_cae_vq_cost.py`. Held-out Neuronexus-32 seed 101 ground-truth snippets "
             "(4 x 64, trough-aligned), second half of a seeded split; SNDR vs input / vs clean, dB. `continuous` = "
             "decoder on the unquantised latent (not codable); `oracle codebook` = k-means codebook refitted on the "
             "first half of this recording's snippets (an implant cannot do this).", "",
             "| model | codes x codebook | payload B/spike (ratio int16 with times) | quantised | continuous | VQ cost (input) | oracle codebook | oracle gain (input) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, entry in output["models"].items():
        q, c, o = entry["quantised"], entry["continuous"], entry["oracle codebook"]
        lines.append(f"| {name} | {entry.get('codes_per_spike', entry.get('num_codes'))} x {entry['codebook_size']} | "
                     f"{entry['payload_bytes_per_spike']:.2f} ({entry['ratio_int16_with_times']:.1f}x) | "
                     f"{q['sndr_input_db_mean']:.2f} / {q['sndr_clean_db_mean']:.2f} | "
                     f"{c['sndr_input_db_mean']:.2f} / {c['sndr_clean_db_mean']:.2f} | "
                     f"{c['sndr_input_db_mean'] - q['sndr_input_db_mean']:.2f} | "
                     f"{o['sndr_input_db_mean']:.2f} / {o['sndr_clean_db_mean']:.2f} | "
                     f"{o['sndr_input_db_mean'] - q['sndr_input_db_mean']:.2f} |")
    (RESULTS / "spike_cae_vq_cost.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
