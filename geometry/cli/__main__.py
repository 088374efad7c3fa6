"""``python -m geometry.cli`` (and ``torchrun … -m geometry.cli study …``)."""

import sys

from .commands import main

sys.exit(main())
