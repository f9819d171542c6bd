"""``python -m greenroom.devserver`` = ``greenroom``."""

from __future__ import annotations

import sys

from greenroom.devserver.cli import main

sys.exit(main())
