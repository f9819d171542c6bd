"""``python -m greenroom.cli`` = ``greenroom``."""

from __future__ import annotations

import sys

from greenroom.cli.main import main

sys.exit(main())
