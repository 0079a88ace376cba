"""The mutation runner's bookkeeping, on mutmut's `.meta` files as it writes them: the seeded sample, the
complete prefix a stopped run leaves behind, the scores per group, and the verdicts kept across checkouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mutation.__main__ as runner

MODULE = "src/pitlane_demo/domain/order.py.meta"


def write_meta(package: Path, exit_codes: dict[str, int | None], hashes: dict[str, str]) -> Path:
    meta = package / "mutants" / MODULE
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"exit_code_by_key": exit_codes, "hash_by_function_name": hashes}))
    return meta


def names(count: int, function: str = "x_total") -> list[str]:
    return [f"pitlane_demo.domain.order.{function}__mutmut_{n}" for n in range(1, count + 1)]


def test_the_sample_is_the_same_on_every_run_and_a_smaller_one_lies_inside_a_larger_one(tmp_path: Path):
    write_meta(tmp_path, dict.fromkeys(names(400)), {"x_total": "h1"})

    tenth, fifth = runner.sampled(tmp_path, 0.1), runner.sampled(tmp_path, 0.2)

    assert tenth is not None and fifth is not None
    assert tenth < fifth and 20 < len(tenth) < 60 and 55 < len(fifth) < 110  # 40 and 80 expected
    assert all(0 <= runner.rank(m) < 1 for m in names(400))
    assert [runner.rank(m) for m in names(3)] == [runner.rank(m) for m in names(3)]
    assert runner.sampled(tmp_path, 1.0) is None


def test_a_run_stopped_part_way_scores_the_largest_fraction_it_tested_through(tmp_path: Path):
    mutants = sorted(names(50), key=runner.rank)
    tested = {m: (1 if n % 5 else 0) for n, m in enumerate(mutants[:30])}  # every fifth survived
    write_meta(tmp_path, {**dict.fromkeys(mutants), **tested}, {"x_total": "h1"})

    fraction = runner.complete_fraction(tmp_path)
    score = runner.score_by_group(tmp_path / "mutants", runner.sampled(tmp_path, fraction))

    assert fraction == runner.rank(mutants[30])
    assert runner._to_test(tmp_path, 1.0, survivors=False) == mutants[30:]
    assert runner._to_test(tmp_path, fraction, survivors=True) == [m for m in mutants[:30] if tested[m] == 0]
    [(group, demo)] = score.items()
    assert (group, demo.killed, len(demo.survivors), demo.not_checked) == ("pitlane_demo.domain", 24, 6, 0)
    assert demo.ratio == 0.8 and 0.13 < demo.margin < 0.15


def test_a_timeout_kills_and_a_mutant_no_test_reaches_survives(tmp_path: Path):
    killed_by_timeout, unreached, segfault = names(3)
    write_meta(tmp_path, {killed_by_timeout: -24, unreached: 33, segfault: -11}, {"x_total": "h1"})

    [demo] = runner.score_by_group(tmp_path / "mutants").values()

    assert demo.killed == 1 and sorted(demo.survivors) == sorted([unreached, segfault])


def test_saved_verdicts_return_only_to_mutants_of_unchanged_functions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(runner, "VERDICTS", tmp_path / "verdicts")
    total, tax = names(2), names(2, "x_tax")
    write_meta(
        tmp_path, {total[0]: 1, total[1]: 0, tax[0]: 1, tax[1]: None}, {"x_total": "h1", "x_tax": "h2"}
    )
    runner.save_verdicts("demo", tmp_path)

    # Another checkout: fresh mutants, and x_tax changed since.
    other = tmp_path / "other"
    write_meta(other, dict.fromkeys(total + tax), {"x_total": "h1", "x_tax": "h3"})
    runner.restore_verdicts("demo", other)

    restored = json.loads((other / "mutants" / MODULE).read_text())["exit_code_by_key"]
    assert restored == {total[0]: 1, total[1]: 0, tax[0]: None, tax[1]: None}


def test_verdicts_mutmut_forgot_are_kept_when_saving_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """mutmut resets every result when its test selection changes; the saved ones of unchanged functions
    must not be lost with them."""
    monkeypatch.setattr(runner, "VERDICTS", tmp_path / "verdicts")
    first, second = names(2)
    write_meta(tmp_path, {first: 1, second: None}, {"x_total": "h1"})
    runner.save_verdicts("demo", tmp_path)

    write_meta(tmp_path, {first: None, second: 0}, {"x_total": "h1"})  # reset, then the second one tested
    runner.save_verdicts("demo", tmp_path)

    saved = json.loads((tmp_path / "verdicts" / "demo.json").read_text())
    assert saved[MODULE]["exit_codes"] == {first: 1, second: 0}
