"""`python -m mutation [package ...] [--fresh] [--max-children N]`: mutmut over each package, then its score.

mutmut 3 mutates the modules its `[tool.mutmut]` section (in the package's pyproject.toml) names, runs the
package's whole test suite once to learn which tests reach which function, and then runs, for each mutant,
only those tests, in a fork of itself. The tests run against real servers as in `make test`: one embedded
PostgreSQL for the whole run (each test still makes its own database), and an embedded nats-server per forked
test run (each test wipes the streams of its server, so concurrent runs must not share one).

Results stay in each package's mutants/ directory: a second run only tests what changed, `--survivors` tests
the survivors again (after new tests), `--fresh` starts over. Exit status 1 when a group scores under
THRESHOLD.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pitlane_platform.embedded import EmbeddedPostgres
from pitlane_platform.testing.servers import make_disposable

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "platform": ROOT / "libs" / "platform",
    "customer-profile": ROOT / "services" / "customer-profile",
    "workorder": ROOT / "services" / "workorder",
    "notification": ROOT / "services" / "notification",
    "reminder": ROOT / "services" / "reminder",
}
THRESHOLD = 0.80
# The sample is the same from run to run (and between machines), so results of earlier runs keep counting.
SAMPLE_SEED = 19
# Verdicts of earlier runs, committed: a mutant of a function whose hash is unchanged keeps its verdict on a
# new machine (mutmut's own results live in the git-ignored mutants/ directory of one checkout).
VERDICTS = ROOT / "mutation" / "verdicts"
# Mutants per mutmut invocation of a sampled run (each starts with a clean run of their tests).
CHUNK = 60
# mutmut's exit codes of a mutant's test run (mutmut/stats.py): a failing test kills, and so does a timeout
# (the mutant made the code hang, which the tests noticed by not finishing).
KILLED = {1, 3, 36, -24}
SURVIVED = {0, 5, 33}  # passed, or no test reached the mutant at all


@dataclass
class Score:
    killed: int = 0
    survivors: list[str] = field(default_factory=list)
    not_checked: int = 0

    @property
    def checked(self) -> int:
        return self.killed + len(self.survivors)

    @property
    def ratio(self) -> float:
        return self.killed / self.checked if self.checked else 1.0

    @property
    def margin(self) -> float:
        """Half the 95 % interval of the ratio, for a score over a random sample (conservative: it ignores
        that the sample is a large share of a finite population)."""
        return 1.96 * math.sqrt(self.ratio * (1 - self.ratio) / self.checked) if self.checked else 0.0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m mutation", description=__doc__.splitlines()[0])
    parser.add_argument(
        "packages", nargs="*", metavar="package", help=f"of {', '.join(PACKAGES)} (all by default)"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="forget earlier results (mutants/ and the saved verdicts)"
    )
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="test again only the mutants that survived the last run (after new tests were written)",
    )
    parser.add_argument(
        "--sample",
        type=float,
        default=1.0,
        metavar="FRACTION",
        help="test a seeded random share of each group's mutants and score on those (default: all)",
    )
    parser.add_argument("--report-only", action="store_true", help="print the scores of the last run")
    args = parser.parse_args(argv)
    args.packages = args.packages or list(PACKAGES)
    if unknown := set(args.packages) - set(PACKAGES):
        parser.error(f"unknown package {', '.join(sorted(unknown))}: choose from {', '.join(PACKAGES)}")

    # A stopped run (kill, timeout) still stops its PostgreSQL and removes its data: the exit unwinds.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if not args.report_only:
        with _database_for_tests() as database_url:
            for name in args.packages:
                package = PACKAGES[name]
                if args.fresh:
                    shutil.rmtree(package / "mutants", ignore_errors=True)
                # Each run first brings the mutants up to date with the source: the list to test is made from
                # them, and a function changed since the last run has new mutants (and no verdicts).
                _generate_mutants(package, database_url)
                if not args.fresh:
                    restore_verdicts(name, package)
                if args.sample < 1.0 or args.survivors:
                    only = _to_test(package, args.sample, survivors=args.survivors)
                    # mutmut tests the names it is given in file order: chunks keep the rank order.
                    for start in range(0, len(only), CHUNK):
                        chunk = only[start : start + CHUNK]
                        _run_mutmut(package, database_url, chunk, max_children=args.max_children)
                        save_verdicts(name, package)
                else:
                    _run_mutmut(package, database_url, [], max_children=args.max_children)
                save_verdicts(name, package)

    fractions = {name: min(args.sample, complete_fraction(PACKAGES[name])) for name in args.packages}
    scores = {
        name: score_by_group(PACKAGES[name] / "mutants", sampled(PACKAGES[name], fractions[name]))
        for name in args.packages
    }
    print("Every mutant tested so far (in mutmut's file order: a random sample only once complete):")
    print(
        report({name: score_by_group(PACKAGES[name] / "mutants") for name in args.packages}, survivors=False)
    )
    print()
    for name, fraction in fractions.items():
        print(f"{name}: scored on the {fraction:.1%} sample, the largest one tested through")
    print(report(scores))
    below = [
        group for groups in scores.values() for group, score in groups.items() if score.ratio < THRESHOLD
    ]
    print(json.dumps({"groups": {g: round(s.ratio, 3) for gs in scores.values() for g, s in gs.items()}}))
    return 1 if below else 0


class _database_for_tests:
    """DATABASE_URL when it is set, else one embedded PostgreSQL for the whole run."""

    def __enter__(self) -> str:
        self._server: EmbeddedPostgres | None = None
        if url := os.environ.get("DATABASE_URL"):
            return url
        self._scratch = Path(tempfile.mkdtemp(prefix="pitlane-mutation-"))
        self._server = EmbeddedPostgres(self._scratch / "postgres").start()
        make_disposable(self._server.admin_url)
        return self._server.admin_url

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()
            shutil.rmtree(self._scratch, ignore_errors=True)


def _mutants(package: Path) -> dict[str, int | None]:
    """Every mutant of the package with its exit code (None: not tested yet), from mutmut's `.meta` files."""
    found: dict[str, int | None] = {}
    for meta in sorted((package / "mutants").glob("src/**/*.py.meta")):
        found.update(json.loads(meta.read_text())["exit_code_by_key"])
    return found


def rank(mutant: str) -> float:
    """A mutant's place in the random order of sampling, in [0, 1): fixed by the seeded hash of its name, so
    the same on every run and machine, and the sample of a smaller fraction lies inside a larger one's."""
    digest = hashlib.sha256(f"{SAMPLE_SEED}:{mutant}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def sampled(package: Path, fraction: float) -> set[str] | None:
    """The mutants a `--sample fraction` run tests (None: all of them)."""
    if fraction >= 1.0:
        return None
    return {mutant for mutant in _mutants(package) if rank(mutant) < fraction}


def complete_fraction(package: Path) -> float:
    """The largest fraction whose sample is tested through: the rank of the first mutant not tested yet."""
    untested = [rank(mutant) for mutant, exit_code in _mutants(package).items() if exit_code is None]
    return min(untested, default=1.0)


def _to_test(package: Path, fraction: float, *, survivors: bool) -> list[str]:
    """The sampled mutants not tested yet, and with `survivors` those that survived, to test again; in rank
    order, so that a run stopped at any point leaves a complete random sample behind it."""
    chosen = sampled(package, fraction)
    return sorted(
        (
            mutant
            for mutant, exit_code in _mutants(package).items()
            if (chosen is None or mutant in chosen)
            and (exit_code is None or (survivors and exit_code not in KILLED))
        ),
        key=rank,
    )


def save_verdicts(name: str, package: Path) -> None:
    """Each tested mutant's exit code, with the hash of the function it mutates, per mutated module. Saved
    verdicts of unchanged functions that mutmut no longer holds (it forgets them all when its test selection
    changes) are kept."""
    saved_file = VERDICTS / f"{name}.json"
    earlier = json.loads(saved_file.read_text()) if saved_file.exists() else {}
    saved: dict[str, dict[str, dict[str, Any]]] = {}
    for meta_file in sorted((package / "mutants").glob("src/**/*.py.meta")):
        meta = json.loads(meta_file.read_text())
        module = meta_file.relative_to(package / "mutants").as_posix()
        hashes = meta["hash_by_function_name"]
        before = earlier.get(module, {"function_hashes": {}, "exit_codes": {}})
        tested = {
            mutant: code
            for mutant, code in before["exit_codes"].items()
            if mutant in meta["exit_code_by_key"]
            and hashes.get(_function_of(mutant)) == before["function_hashes"].get(_function_of(mutant))
        }
        tested.update({key: code for key, code in meta["exit_code_by_key"].items() if code is not None})
        if tested:
            saved[module] = {
                "function_hashes": dict(sorted(hashes.items())),
                "exit_codes": dict(sorted(tested.items())),
            }
    VERDICTS.mkdir(exist_ok=True)
    saved_file.write_text(json.dumps(saved, indent=1, ensure_ascii=False) + "\n")


def restore_verdicts(name: str, package: Path) -> None:
    """Give untested mutants the saved verdict, where the function they mutate is unchanged since."""
    saved_file = VERDICTS / f"{name}.json"
    if not saved_file.exists():
        return
    saved = json.loads(saved_file.read_text())
    for module, verdicts in saved.items():
        meta_file = package / "mutants" / module
        if not meta_file.exists():
            continue
        meta = json.loads(meta_file.read_text())
        current_hashes = meta["hash_by_function_name"]
        for mutant, exit_code in verdicts["exit_codes"].items():
            function = _function_of(mutant)
            unchanged = current_hashes.get(function) == verdicts["function_hashes"].get(function)
            if unchanged and mutant in meta["exit_code_by_key"] and meta["exit_code_by_key"][mutant] is None:
                meta["exit_code_by_key"][mutant] = exit_code
        meta_file.write_text(json.dumps(meta, indent=4))


def _function_of(mutant: str) -> str:
    """The key of the mutated function in mutmut's `hash_by_function_name` (`xǁClassǁmethod`, `x_function`)."""
    return mutant.split(".")[-1].rsplit("__mutmut_", 1)[0]


def _generate_mutants(package: Path, database_url: str) -> None:
    """mutmut writes its mutants (and learns which tests reach what) before it filters them by name: a name
    that matches none stops it right after, with every mutant known and none tested (and a non-zero exit).
    On a second call it rewrites only the changed modules' mutants and runs only new tests for their stats."""
    _run_mutmut(package, database_url, ["pitlane-mutation-matches-no-mutant"], max_children=1, check=False)


def _run_mutmut(
    package: Path, database_url: str, only: list[str], *, max_children: int, check: bool = True
) -> None:
    environment = {key: value for key, value in os.environ.items() if key != "NATS_URL"}
    environment["DATABASE_URL"] = database_url
    log = package / "mutants.log"
    print(f"mutmut in {package.relative_to(ROOT)} (progress in {log.relative_to(ROOT)})", flush=True)
    with log.open("w") as output:
        subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children), *only],
            cwd=package,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            check=check,
        )


def score_by_group(mutants: Path, only: set[str] | None = None) -> dict[str, Score]:
    """Scores per group of modules (`pitlane_workorder.domain`, `pitlane_platform.auth`, ...), from the
    `.meta` files mutmut writes beside each mutated module; of the mutants in `only`, when given."""
    scores: dict[str, Score] = defaultdict(Score)
    for meta in sorted(mutants.glob("src/**/*.py.meta")):
        for mutant, exit_code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if only is not None and mutant not in only:
                continue
            score = scores[_group_of(mutant)]
            if exit_code is None:
                score.not_checked += 1
            elif exit_code in KILLED:
                score.killed += 1
            elif exit_code in SURVIVED:
                score.survivors.append(mutant)
            else:  # segfault, suspicious: counted against us rather than hidden
                score.survivors.append(mutant)
    return dict(scores)


def _group_of(mutant: str) -> str:
    parts = mutant.split(".")
    return ".".join(parts[:2])


def report(scores: dict[str, dict[str, Score]], *, survivors: bool = True) -> str:
    lines = [
        "| group | mutants tested | killed | survived | score (95 % interval if sampled) |",
        "|---|---|---|---|---|",
    ]
    for groups in scores.values():
        for group, score in sorted(groups.items()):
            unchecked = f" ({score.not_checked} not yet checked)" if score.not_checked else ""
            lines.append(
                f"| {group} | {score.checked}{unchecked} | {score.killed} | {len(score.survivors)} "
                f"| {score.ratio:.1%} (± {score.margin:.1%}) |"
            )
    if not survivors:
        return "\n".join(lines)
    by_function = Counter(
        mutant.rsplit("__mutmut_", 1)[0]
        for groups in scores.values()
        for score in groups.values()
        for mutant in score.survivors
    )
    lines.append("")
    lines.append("Survivors per function (`mutmut show <name>__mutmut_<n>` in the package shows each):")
    lines.extend(f"  {count:3d}  {function}" for function, count in by_function.most_common())
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
