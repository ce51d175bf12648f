"""How the agent starts its helper children (probe and spool workers).

Children run `python -I -B -S` from `/`: isolated from the agent's environment and
working directory, writing no bytecode (which could land on a frozen filesystem),
without the site module (megabytes per child; workers use the standard library
only), with this package's root put on sys.path explicitly so that it works from a
source tree and from an installed package alike.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def python_argv(module: str, function: str, *args: str) -> list[str]:
    code = (
        f"import sys; sys.path.insert(0, sys.argv[1]); "
        f"from {module} import {function}; {function}(sys.argv[2:])"
    )
    return [sys.executable, "-I", "-B", "-S", "-c", code, PACKAGE_ROOT, *args]
