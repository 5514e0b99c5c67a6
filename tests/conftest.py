"""Test-session set-up: keep MEArec and our caches out of the user's home."""

import os
import tempfile
from pathlib import Path

# MEArec writes ~/.config/mearec on first use and our template cache defaults to ~/.cache:
# point both at a per-session temporary folder before anything imports MEArec.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="vqcompress-tests-home-"))
os.environ["HOME"] = str(_SESSION_HOME)
os.environ.setdefault("VQCOMPRESS_CACHE", str(_SESSION_HOME / "cache"))
os.environ["XDG_CONFIG_HOME"] = str(_SESSION_HOME / ".config")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


import pytest  # noqa: E402

# NEURON cell models that simulate fastest; shared by every test that needs MEArec ground truth so
# the session generates one small template library (cached under VQCOMPRESS_CACHE).
FAST_CELLS = ["L5_BTC_bAC217_1", "L5_DBC_bAC217_1", "L5_MC_bAC217_1", "L5_STPC_cADpyr232_1"]


@pytest.fixture(scope="session")
def ground_truth_file(tmp_path_factory):
    """10 s, Neuronexus-32, 5 units, MEArec with NEURON templates of 4 cells (one file per session)."""
    from spikeinterface_vqcompress.groundtruth import simulate_recording

    path = tmp_path_factory.mktemp("gt") / "gt.h5"
    return simulate_recording(path, probe="Neuronexus-32", num_units=5, duration_s=10.0, seed=11,
                              num_templates_per_cell=4, cell_models=FAST_CELLS)


def trained_bn_model(num_channels, num_units, seed=0):
    """A random E-Sort network whose batch-norm statistics are not the identity."""
    import torch

    from spikeinterface_vqcompress.esort.model import ESortNet

    torch.manual_seed(seed)
    model = ESortNet(num_channels, num_units)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(128, num_channels, 60) * 2 + 0.5)
    return model.eval()
