"""Tests run with --import-mode=importlib, which puts no test directory on sys.path: the deploy tests share
their readers and validators (manifests.py) through this one."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
