"""Run every bench in this package, in name order, with the same command-line options; the exit status is 1
when any of them missed a target."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def main(argv: list[str]) -> int:
    statuses = [
        importlib.import_module(f"bench.{module.name}").main(argv)
        for module in sorted(pkgutil.iter_modules(bench.__path__), key=lambda module: module.name)
        if module.ispkg
    ]
    return max(statuses, default=0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
