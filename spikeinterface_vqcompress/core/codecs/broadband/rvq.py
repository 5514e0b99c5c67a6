"""The learned lossy model of the broadband codec: a convolutional autoencoder over (channels, time)
with residual vector quantisation (RVQ) of its latent.

Shapes: a chunk ``(num_samples, num_channels)`` is normalised per channel (median offset, noise scale
from the median absolute deviation, both sent as side information). Every channel runs through the
same 1D convolutions over time; the channel axis enters through the neighbours (the previous and next
channel in the recording's channel order, which on linear and multi-column probes follows the
geometry): the encoder's first layer sees channels c-1, c, c+1, the decoder's first layer their
latents. So the model takes any channel count. Along time the
encoder downsamples by ``2 ** num_down`` (default 8); each latent position is one ``latent_dim``
vector per channel, quantised by ``num_stages`` residual codebooks of ``codebook_size`` codes:
stage ``s`` quantises what stages ``0..s-1`` left. Sending only the first ``n`` stages is the rate
knob: the model is trained with quantiser dropout (a random number of stages per batch, as in
SoundStream, Zeghidour et al. 2021), so one set of weights serves every rate.

Training: random crops of MEArec recordings, loss = MSE in noise units + the VQ commitment loss;
codebooks by EMA with k-means initialisation and dead-code restarts
(:class:`~spikeinterface_vqcompress.core.nn.vq.VectorQuantizer`). The per-stage code usage of the
training data becomes the frozen rANS frequency tables shipped in the weights file.

This module must not import spikeinterface.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from spikeinterface_vqcompress.core.codecs.broadband.defaults import DEFAULT_CONFIG
from spikeinterface_vqcompress.core.jsonio import write_json
from spikeinterface_vqcompress.core.nn.vq import VectorQuantizer

WEIGHTS_FORMAT = "broadband-rvq-weights/1"



def normalisation(traces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel offset (int16 median) and noise scale (float16 median absolute deviation / 0.6745,
    at least 1 stored unit) of a chunk ``(num_samples, num_channels)``.

    Both are exactly what the decoder receives: the offset as int16, the scale rounded to float16.
    """
    traces = np.asarray(traces)
    median = np.median(traces, axis=0)
    offset = np.clip(np.rint(median), -32768, 32767).astype(np.int16)
    mad = np.median(np.abs(traces - median), axis=0) / 0.6745
    scale = np.maximum(mad, 1.0).astype(np.float16)
    return offset, scale


class BroadbandRVQ(nn.Module):
    """Convolutional encoder / decoder over (channels, time) with a residual VQ latent.

    Parameters
    ----------
    hidden_channels : int, default: 16
        Feature maps of every hidden convolution.
    latent_dim : int, default: 8
        Length of one latent vector (per channel and latent time step).
    num_down : int, default: 3
        Stride-2 downsampling layers along time (the latent rate is ``fs / 2 ** num_down``).
    codebook_size : int, default: 256
        Codes per RVQ stage (8 bits per stage before entropy coding).
    num_stages : int, default: 4
        RVQ stages the model is trained with (the most a codec can send).
    time_kernel : int, default: 5
        Kernel length along time of the hidden convolutions.
    commitment_weight : float, default: 0.25
        VQ commitment loss weight.
    """

    def __init__(self, hidden_channels=16, latent_dim=8, num_down=3, codebook_size=256, num_stages=4, time_kernel=5,
                 commitment_weight=0.25):
        super().__init__()
        self.config = {"hidden_channels": int(hidden_channels), "latent_dim": int(latent_dim), "num_down": int(num_down),
                       "codebook_size": int(codebook_size), "num_stages": int(num_stages), "time_kernel": int(time_kernel),
                       "commitment_weight": float(commitment_weight)}
        h, k, d = self.config["hidden_channels"], self.config["time_kernel"], self.config["latent_dim"]
        # per-channel 1D convolutions over time (channels folded into the batch); the channel axis
        # enters through the neighbours: the encoder's first layer sees channels c-1, c, c+1 and the
        # decoder's first layer the latents of c-1, c, c+1
        encoder = [nn.Conv1d(3, h, 2 * k + 1, padding=k), nn.GELU()]
        for _ in range(self.config["num_down"]):
            encoder += [nn.Conv1d(h, h, k + 1, stride=2, padding=k // 2), nn.GELU(),
                        nn.Conv1d(h, h, k, padding=k // 2), nn.GELU()]
        encoder += [nn.Conv1d(h, d, 1)]
        self.encoder = nn.Sequential(*encoder)
        decoder = [nn.Conv1d(3 * d, h, 1), nn.GELU()]
        for _ in range(self.config["num_down"]):
            decoder += [nn.ConvTranspose1d(h, h, 4, stride=2, padding=1), nn.GELU(),
                        nn.Conv1d(h, h, k, padding=k // 2), nn.GELU()]
        decoder += [nn.Conv1d(h, 1, 2 * k + 1, padding=k)]
        self.decoder = nn.Sequential(*decoder)
        self.quantizers = nn.ModuleList(
            VectorQuantizer(self.config["codebook_size"], self.config["latent_dim"], commitment_weight=commitment_weight,
                            use_ema=True, kmeans_init=True, dead_code_threshold=0.5)
            for _ in range(self.config["num_stages"]))

    @property
    def stride(self) -> int:
        """Samples per latent step."""
        return 2 ** self.config["num_down"]

    def padded_length(self, num_samples: int) -> int:
        return -(-int(num_samples) // self.stride) * self.stride

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        extra = self.padded_length(x.shape[-1]) - x.shape[-1]
        return torch.nn.functional.pad(x, (0, extra), mode="replicate") if extra else x

    @staticmethod
    def _with_neighbours(x: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, features, length)`` -> ``(batch, channels, 3 * features, length)``: each channel
        with its previous and next channel (the edge channels repeat themselves)."""
        padded = torch.cat([x[:, :1], x, x[:, -1:]], dim=1)
        return torch.cat([padded[:, :-2], padded[:, 1:-1], padded[:, 2:]], dim=2)

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(batch, channels, samples)`` in noise units -> latent ``(batch, channels, steps, latent_dim)``."""
        x = self._with_neighbours(self._pad(x).unsqueeze(2))
        batch, channels = x.shape[:2]
        z = self.encoder(x.reshape(batch * channels, 3, -1))
        return z.reshape(batch, channels, z.shape[1], z.shape[2]).transpose(2, 3)

    def quantize(self, z: torch.Tensor, num_stages: int):
        """Residual quantisation with the first ``num_stages`` codebooks: (quantized, indices, commitment)."""
        residual, quantized = z, torch.zeros_like(z)
        indices, commitment = [], z.new_zeros(())
        for quantizer in self.quantizers[:num_stages]:
            result = quantizer(residual)
            quantized = quantized + result["quantized"]
            residual = residual - result["quantized"].detach()
            indices.append(result["indices"])
            commitment = commitment + result["commitment_loss"]
        return quantized, torch.stack(indices, dim=-1), commitment

    def decode_latent(self, latent: torch.Tensor, num_samples: int) -> torch.Tensor:
        """Latent ``(batch, channels, steps, latent_dim)`` -> ``(batch, channels, num_samples)``."""
        batch, channels = latent.shape[:2]
        features = self._with_neighbours(latent.transpose(2, 3))
        y = self.decoder(features.reshape(batch * channels, features.shape[2], features.shape[3]))
        return y.reshape(batch, channels, -1)[..., :num_samples]

    @torch.no_grad()
    def encode_indices(self, x: torch.Tensor, num_stages: int) -> torch.Tensor:
        """Code indices ``(batch, channels, steps, num_stages)`` of normalised traces."""
        z = self.encode_latent(x)
        residual, indices = z, []
        for quantizer in self.quantizers[:num_stages]:
            index = quantizer.quantize_indices(residual)
            residual = residual - quantizer.lookup(index)
            indices.append(index)
        return torch.stack(indices, dim=-1)

    @torch.no_grad()
    def decode_indices(self, indices: torch.Tensor, num_samples: int) -> torch.Tensor:
        """Normalised traces ``(batch, channels, num_samples)`` from indices ``(batch, channels, steps, stages)``."""
        latent = sum(self.quantizers[stage].lookup(indices[..., stage]) for stage in range(indices.shape[-1]))
        return self.decode_latent(latent, num_samples)

    def forward(self, x: torch.Tensor, num_stages: int):
        z = self.encode_latent(x)
        quantized, indices, commitment = self.quantize(z, num_stages)
        return self.decode_latent(quantized, x.shape[-1]), indices, commitment

    def encoder_macs_per_sample(self, num_stages: int) -> float:
        """Multiply-accumulates per input sample (per channel) of the encoder and the RVQ search."""
        macs, rate = 0.0, 1.0
        for layer in self.encoder:
            if isinstance(layer, nn.Conv1d):
                rate /= layer.stride[0]
                macs += rate * layer.in_channels * layer.out_channels * layer.kernel_size[0]
        macs += rate * num_stages * self.config["codebook_size"] * self.config["latent_dim"]
        return macs

    def receptive_field_samples(self) -> int:
        """Future samples the encoder needs before it can emit a latent step (half its receptive field)."""
        field, jump = 1, 1
        for layer in self.encoder:
            if isinstance(layer, nn.Conv1d):
                field += (layer.kernel_size[0] - 1) * jump
                jump *= layer.stride[0]
        return field // 2 + self.stride


def save_weights(model: BroadbandRVQ, path, index_frequencies: np.ndarray, dtype=torch.float16):
    """Write the weights file: config, state_dict (``dtype``) and the frozen per-stage rANS tables."""
    state = {key: (value.to(dtype) if value.is_floating_point() and key.split(".")[-1] not in ("usage_counts",) else value)
             for key, value in model.state_dict().items()}
    payload = {"format": WEIGHTS_FORMAT, "config": dict(model.config), "state_dict": state,
               "index_frequencies": torch.as_tensor(np.asarray(index_frequencies, dtype=np.int64))}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_weights(path) -> tuple[BroadbandRVQ, np.ndarray]:
    """Read a weights file (``torch.load(weights_only=True)``): ``(model in eval mode, index_frequencies)``."""
    from spikeinterface_vqcompress.core.errors import CorruptDataError

    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise CorruptDataError(f"{path} is not a broadband-rvq weights file (format '{WEIGHTS_FORMAT}')")
    model = BroadbandRVQ(**payload["config"])
    state = {key: value.float() if value.is_floating_point() and value.dtype != torch.float64 else value
             for key, value in payload["state_dict"].items()}
    model.load_state_dict(state)
    model.eval()
    return model, np.asarray(payload["index_frequencies"].numpy(), dtype=np.int64)


def _training_crops(recordings, crop_samples: int, max_channels: int, rng: np.random.Generator):
    """Yield normalised crops ``(channels, crop_samples)`` forever, from int16 arrays ``(samples, channels)``
    normalised with the codec's own per-chunk statistics (computed over 1 s blocks)."""
    while True:
        traces, block = recordings[rng.integers(len(recordings))]
        start = int(rng.integers(0, traces.shape[0] - crop_samples))
        block_start = min(start // block * block, max(traces.shape[0] - block, 0))
        offset, scale = normalisation(traces[block_start:block_start + block])
        crop = (traces[start:start + crop_samples].astype(np.float32) - offset) / scale.astype(np.float32)
        channels = crop.shape[1]
        if channels > max_channels:  # a contiguous run of channels keeps the neighbour structure
            first = int(rng.integers(0, channels - max_channels + 1))
            crop = crop[:, first:first + max_channels]
        yield crop.T


def train_broadband_rvq(recordings, config: dict | None = None, steps: int = 1500, batch_size: int = 8,
                        crop_samples: int = 2048, max_channels: int = 32, learning_rate: float = 2e-3, seed: int = 0,
                        num_threads: int | None = None, validation=None, log=print):
    """Train a :class:`BroadbandRVQ` on int16 recordings.

    Parameters
    ----------
    recordings : list of (np.ndarray, int)
        ``(traces int16 (num_samples, num_channels), samples per normalisation block)`` pairs, the
        block being the codec's chunk length (1 s).
    config : dict | None
        Model parameters (defaults: :data:`DEFAULT_CONFIG`).
    steps, batch_size, crop_samples, max_channels, learning_rate : training schedule
        Adam, cosine decay; crops of ``crop_samples`` samples and at most ``max_channels`` channels.
    seed : int, default: 0
        Seeds torch and the crop sampler.
    num_threads : int | None
        torch threads (None: leave torch's default).
    validation : list of (np.ndarray, int) | None
        Held-out recordings: the normalised RMSE per number of stages is reported on them.
    log : callable
        Progress messages.

    Returns
    -------
    (BroadbandRVQ, np.ndarray, dict)
        The model (eval mode), the frozen rANS frequency table ``(num_stages, codebook_size)`` and a
        training report.
    """
    from spikeinterface_vqcompress.core.entropy import build_frequency_table

    if num_threads:
        torch.set_num_threads(int(num_threads))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = BroadbandRVQ(**{**DEFAULT_CONFIG, **(config or {})})
    num_stages = model.config["num_stages"]
    crops = _training_crops(recordings, crop_samples, max_channels, rng)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    started = time.perf_counter()
    history = []
    for step in range(steps):
        batch = torch.from_numpy(np.stack([next(crops) for _ in range(batch_size)]))
        # quantiser dropout (after a warm-up with every stage): half the batches use every stage,
        # the others a random number of stages, so that each prefix of stages decodes well
        dropout = step > steps // 10 and rng.random() < 0.5
        stages = int(rng.integers(1, num_stages + 1)) if dropout else num_stages
        model.train()
        output, _, commitment = model(batch, stages)
        loss = torch.nn.functional.mse_loss(output, batch) + commitment
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % max(steps // 20, 1) == 0 or step == steps - 1:
            history.append({"step": step, "stages": stages, "loss": round(float(loss.detach()), 5)})
            log(f"step {step}/{steps}  stages {stages}  loss {float(loss.detach()):.4f}  ({time.perf_counter() - started:.0f} s)")
    model.eval()
    # frozen entropy-coder tables: code usage of every stage on fresh training crops
    counts = np.zeros((num_stages, model.config["codebook_size"]), dtype=np.int64)
    with torch.no_grad():
        for _ in range(max(200 // batch_size, 1)):
            batch = torch.from_numpy(np.stack([next(crops) for _ in range(batch_size)]))
            indices = model.encode_indices(batch, num_stages).reshape(-1, num_stages).numpy()
            for stage in range(num_stages):
                counts[stage] += np.bincount(indices[:, stage], minlength=model.config["codebook_size"])
    frequencies = np.stack([build_frequency_table(counts[stage]) for stage in range(num_stages)])
    report = {"steps": steps, "batch_size": batch_size, "crop_samples": crop_samples, "max_channels": max_channels,
              "learning_rate": learning_rate, "seed": seed, "train_time_s": round(time.perf_counter() - started, 1),
              "history": history}
    if validation:
        report["validation_rmse_noise_units"] = evaluate_normalised_rmse(model, validation)
    return model, frequencies, report


@torch.no_grad()
def evaluate_normalised_rmse(model: BroadbandRVQ, recordings, seconds: float = 2.0) -> dict:
    """RMSE in noise units for every number of stages, on the first 1 s blocks of each recording."""
    errors = {stages: [] for stages in range(1, model.config["num_stages"] + 1)}
    for traces, block in recordings:
        for start in range(0, min(traces.shape[0], int(seconds * block)) - block + 1, block):
            chunk = traces[start:start + block]
            offset, scale = normalisation(chunk)
            x = torch.from_numpy(((chunk.astype(np.float32) - offset) / scale.astype(np.float32)).T[None])
            for stages in errors:
                y = model.decode_indices(model.encode_indices(x, stages), x.shape[-1])
                errors[stages].append(float(torch.mean((y - x) ** 2)))
    return {str(stages): round(float(np.sqrt(np.mean(values))), 4) for stages, values in errors.items()}


def write_model_card(model: BroadbandRVQ, frequencies: np.ndarray, output_path, report: dict) -> Path:
    """Save the weights (float16) and a JSON card with the file's sha256 next to them."""
    from spikeinterface_vqcompress.core.weights import file_sha256

    output_path = Path(output_path)
    save_weights(model, output_path, frequencies)
    card = {"name": output_path.stem,
            "architecture": "broadband conv autoencoder over (channels, time) + residual VQ "
                            "(spikeinterface_vqcompress/broadband/rvq.py)",
            "config": dict(model.config), **report,
            "weights_file": output_path.name, "weights_sha256": file_sha256(output_path),
            "weights_nbytes": output_path.stat().st_size,
            "parameter_count": int(sum(p.numel() for p in model.parameters()) + sum(
                q.codebook.numel() for q in model.quantizers)),
            "weights_dtype": "float16 (cast to float32 on load)"}
    write_json(output_path.with_suffix(".json"), card, fallback=str)
    return output_path
