"""``python -m spikeinterface_vqcompress.cli`` runs the ``vqcompress`` command."""

import sys

from spikeinterface_vqcompress.cli.main import main

sys.exit(main())
