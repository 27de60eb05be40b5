"""``python -m benchmarks.bench [ARGS]`` (``make bench ARGS=...``), and the ceiling's process:
``python -m benchmarks.bench passthrough BOOTSTRAP PREFIX GROUP``."""

from __future__ import annotations

import sys

from .cli import main
from .contenders import passthrough

if len(sys.argv) > 1 and sys.argv[1] == "passthrough":
    passthrough(*sys.argv[2:5])
else:
    raise SystemExit(main())
