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
