"""Pitlane's benchmarks: each sub-package is one bench, run with `python -m bench.<name>`; `python -m bench`
(or `make bench`) runs them all. Figures are always printed beside a raw baseline measured in the same run,
because the machines are shared and noisy: the ratios are what a bench asserts, not absolute numbers."""
