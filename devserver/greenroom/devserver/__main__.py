"""``python -m greenroom.devserver serve``: the dev server alone (the ``greenroom`` command is
``greenroom.cli``)."""

from __future__ import annotations

import sys

from greenroom.devserver.cli import main

sys.exit(main())
