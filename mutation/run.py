"""`make mutants`: mutation testing of the code whose mistakes a caller would see, and MUTANTS.md.

    python -m mutation.run [--output MUTANTS.md] [--max-children N] [--resume | --reuse]

mutmut changes one thing at a time in the modules of `MODULES` (a comparison flipped, a constant
changed, an argument dropped) and runs the tests that reach the changed function. A change no
test notices "survives": either a behaviour no test checks, or a change no caller could ever tell
apart (an "equivalent" mutant). Each equivalent one is written down in mutation/equivalent.toml
with the reason. The score is the share of all mutants the tests catch.

mutmut imports the code it mutates as a top-level package of its working folder, so the run
happens in a copy (build/mutation): the package as `src/sms_gateway`, the tests beside it, and a
pyproject.toml that carries the settings below. Nothing in the repository is changed but the
report. The command fails when the score is below `TARGET` or a survivor is unexplained.

A whole run takes hours on two cores. `--resume` (`make mutants RESUME=1`) continues a stopped
run: mutmut keeps the verdict of every mutant already tested whose function did not change since,
and tests the rest; then the mutants no test caught are run again against stats collected afresh
(see recheck_uncaught).
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = PROJECT_ROOT / "layers" / "shared" / "sms_gateway"
STAGE = PROJECT_ROOT / "build" / "mutation"
EQUIVALENTS = Path(__file__).resolve().parent / "equivalent.toml"

# The status machine, the send, scheduling, the handoff, the status callback, the webhooks and
# inbound messages.
MODULES = (
    "store/transitions.py",
    "logic/sending.py",
    "logic/composing.py",
    "store/idempotency.py",
    "logic/scheduling.py",
    "store/schedules.py",
    "logic/handoff.py",
    "logic/handoff_deliveries.py",
    "logic/status_updates.py",
    "providers/twilio/callbacks.py",
    "domain/limits.py",
    "domain/usage.py",
    "logic/admission.py",
    "logic/usage.py",
    "store/limits_store.py",
    "store/expressions.py",
    "store/usage_store.py",
    "domain/caller_webhooks.py",
    "domain/callback_urls.py",
    "logic/caller_webhook_delivery.py",
    "store/webhook_http.py",
    "domain/inbound.py",
    "domain/reply_forwarding.py",
    "logic/inbound.py",
    "logic/reply_forwarding.py",
    "store/inbound_store.py",
    "store/index_pages.py",
    "store/opt_out_store.py",
    "providers/twilio/inbound.py",
)

# The unit and integration tests; mutmut runs, for each mutant, only those that reach its
# function. Left out: the tests of files rather than code (the template, the built artifact, the
# OpenAPI document, the benchmarks' report, the repository's and the package's layout), which
# never reach the mutated modules, and some of which look for files beside the tests' folder.
TESTS = (
    "tests/unit",
    "tests/integration",
    "--ignore=tests/unit/test_bench_report.py",
    "--ignore=tests/unit/test_built_template.py",
    "--ignore=tests/unit/test_template.py",
    "--ignore=tests/unit/test_repository_stands_alone.py",
    "--ignore=tests/unit/test_events_present.py",
    "--ignore=tests/unit/test_openapi.py",
    "--ignore=tests/unit/test_one_local_aws.py",
    "--ignore=tests/unit/test_layout.py",
)

# Files some tests read beside the tests' folder (the README's promises, the template, the
# functions' handlers), and the local stack and the operator tools the tests import: copied, so
# that the run tests the code as it was staged even while the working tree changes (the editable
# install would import the working tree's, which may not fit the staged package).
ALSO_COPY = ("README.md", "template.yaml", "events", "docs", "functions", "local", "tools")
# Where the copies of `local` and `tools` are imported from (mutmut runs in STAGE/mutants).
IMPORT_PATHS = (STAGE / "mutants" / "local", STAGE / "mutants" / "tools")

TARGET = 0.90

# mutmut's words for a mutant's fate, and whether the tests caught it. A timeout is a mutant that
# made a test hang: caught, since the run would not have passed.
CAUGHT = {"killed": True, "timeout": True, "survived": False, "no tests": False}
# A mutant a stopped run never reached: neither caught nor survived, and the run is incomplete.
NOT_CHECKED = "not checked"


@dataclass(frozen=True)
class Mutant:
    name: str  # e.g. sms_gateway.logic.handoff.x_hand_off__mutmut_12
    status: str
    removed: str  # the lines the mutant takes out, stripped, one per line
    added: str  # the lines it puts in their place

    @property
    def module(self) -> str:
        # sms_gateway.logic.handoff.x_hand_off__mutmut_12 -> logic/handoff.py
        return "/".join(self.name.split(".")[1:-1]) + ".py"

    @property
    def function(self) -> str:
        mangled = self.name.rsplit(".", 1)[1].partition("__mutmut_")[0]
        return mangled.split("ǁ")[-1].removeprefix("x_")


@dataclass(frozen=True)
class Equivalent:
    module: str
    function: str
    removed: str
    added: str
    why: str

    def matches(self, mutant: Mutant) -> bool:
        return (self.module, self.function, self.removed, self.added) == (
            mutant.module,
            mutant.function,
            mutant.removed,
            mutant.added,
        )


def load_equivalents(path: Path = EQUIVALENTS) -> list[Equivalent]:
    entries = tomllib.loads(path.read_text()).get("equivalent", [])
    return [
        Equivalent(
            module=e["module"],
            function=e["function"],
            removed=e["removed"].strip(),
            added=e["added"].strip(),
            why=" ".join(e["why"].split()),
        )
        for e in entries
    ]


def _mutmut_settings() -> str:
    def toml_list(items: tuple[str, ...] | list[str]) -> str:
        return "[" + ", ".join(f'"{item}"' for item in items) + "]"

    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["src/sms_gateway"]\n'
        f"only_mutate = {toml_list([f'src/sms_gateway/{m}' for m in MODULES])}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(TESTS)}\n"
        # The tests' own cache is of no use to a copy that is thrown away.
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]\n'
        f"also_copy = {toml_list(ALSO_COPY)}\n"
        # Each mutant's tests run in a process forked from one that has not run the suite: after
        # a run, Powertools' log handlers still point at that run's closed capture stream.
        'process_isolation = "forkserver"\n'
    )


def stage(*, keep_results: bool = False) -> None:
    """A fresh copy of the package, the tests and the project's settings, where mutmut runs.
    `keep_results`: keep mutmut's own folder (its mutants and their verdicts) from the last run."""
    results = STAGE / "mutants"
    kept = STAGE.with_name("mutation-results")
    shutil.rmtree(kept, ignore_errors=True)
    if keep_results and results.is_dir():
        results.rename(kept)
    shutil.rmtree(STAGE, ignore_errors=True)
    STAGE.mkdir(parents=True)
    if kept.is_dir():
        kept.rename(results)
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis")
    shutil.copytree(PACKAGE, STAGE / "src" / "sms_gateway", ignore=ignore)
    for module in MODULES:
        staged = STAGE / "src" / "sms_gateway" / module
        staged.write_text(without_log_mutants(staged.read_text()))
    shutil.copytree(PROJECT_ROOT / "tests", STAGE / "tests", ignore=ignore)
    for name in ALSO_COPY:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, STAGE / name, ignore=ignore)
        else:
            shutil.copy2(source, STAGE / name)
    settings = (PROJECT_ROOT / "pyproject.toml").read_text() + _mutmut_settings()
    (STAGE / "pyproject.toml").write_text(settings)


def without_log_mutants(source: str) -> str:
    """The module with each logger call fenced off from mutmut (its `no mutate` pragmas, in the
    staged copy only). What a log line says is for operators reading it, not a caller, and no
    test pins its words; what a log line must never hold (a whole number, a message body) is
    tested on its own. Mutating the words would fill the report with changes nobody can see."""
    lines = source.splitlines(keepends=True)
    calls = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Attribute)
        and isinstance(node.value.func.value, ast.Name)
        and node.value.func.value.id == "logger"
    ]
    for call in sorted(calls, key=lambda n: n.lineno, reverse=True):
        first, last = call.lineno - 1, (call.end_lineno or call.lineno) - 1
        indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
        lines.insert(last + 1, f"{indent}# pragma: no mutate end\n")
        lines.insert(first, f"{indent}# pragma: no mutate start\n")
    return "".join(lines)


# mutmut's own command line, with its timeouts sent through pidfds (see the module).
MUTMUT = [sys.executable, str(Path(__file__).with_name("mutmut_cli.py"))]


def _environment() -> dict[str, str]:
    """The staged copies of the local stack and the tools come first on the import path."""
    paths = [str(path) for path in IMPORT_PATHS]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def _mutmut(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (our own venv's mutmut, fixed arguments)
        [*MUTMUT, *args], cwd=STAGE, capture_output=True, text=True, check=False,
        env=_environment(),
    )  # fmt: skip


def run_mutmut(max_children: int, *names: str) -> None:
    """Run every mutant without a verdict, or (`names`) these mutants again."""
    # mutmut draws its progress on the terminal; its last lines are enough when it fails.
    done = subprocess.run(  # noqa: S603
        [*MUTMUT, "run", "--max-children", str(max_children), *names],
        cwd=STAGE,
        capture_output=True,
        text=True,
        check=False,
        env=_environment(),
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).replace("\r", "\n").splitlines()[-40:])
        raise SystemExit(f"mutmut run failed ({done.returncode}):\n{tail}")


def recheck_uncaught(max_children: int) -> None:
    """Run the mutants no test caught again, against stats collected afresh.

    A resumed run collects stats (which tests reach which function) only for tests that are
    new: an old test that now reaches a function added or changed since is not mapped to it, so
    that function's mutants were tried against too few tests. Their survivors are suspect;
    what a test killed stays killed."""
    uncaught = [m.name for m in read_mutants() if m.status in ("survived", "no tests")]
    if not uncaught:
        return
    (STAGE / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
    run_mutmut(max_children, *uncaught)


_RESULT = re.compile(r"^\s*(?P<name>\S+__mutmut_\d+): (?P<status>.+?)\s*$")


def read_mutants() -> list[Mutant]:
    listing = _mutmut("results", "--all", "true").stdout
    mutants = []
    for line in listing.splitlines():
        found = _RESULT.match(line)
        if not found:
            continue
        name, status = found["name"], found["status"]
        removed = added = ""
        if status != NOT_CHECKED and not CAUGHT.get(status, False):
            removed, added = _diff(name)
        mutants.append(Mutant(name, status, removed, added))
    return mutants


def _diff(name: str) -> tuple[str, str]:
    shown = _mutmut("show", name).stdout.splitlines()
    removed = [ln[1:].strip() for ln in shown if ln.startswith("-") and not ln.startswith("---")]
    added = [ln[1:].strip() for ln in shown if ln.startswith("+") and not ln.startswith("+++")]
    return "\n".join(removed), "\n".join(added)


@dataclass(frozen=True)
class Tally:
    caught: int
    equivalent: int
    survived: int

    @property
    def score(self) -> float:
        """Caught among all mutants: an equivalent one counts against it too, so that calling a
        mutant equivalent can never raise the score."""
        total = self.caught + self.equivalent + self.survived
        return self.caught / total if total else 1.0


def tally(mutants: list[Mutant], equivalents: list[Equivalent]) -> Tally:
    mutants = [m for m in mutants if m.status != NOT_CHECKED]
    caught = sum(1 for m in mutants if CAUGHT.get(m.status, False))
    equivalent = sum(
        1
        for m in mutants
        if not CAUGHT.get(m.status, False) and any(e.matches(m) for e in equivalents)
    )
    return Tally(caught, equivalent, len(mutants) - caught - equivalent)


def render(mutants: list[Mutant], equivalents: list[Equivalent], seconds: float | None) -> str:
    unchecked = [m for m in mutants if m.status == NOT_CHECKED]
    survivors = [m for m in mutants if m.status != NOT_CHECKED and not CAUGHT.get(m.status, False)]
    unexplained = [m for m in survivors if not any(e.matches(m) for e in equivalents)]
    explained = [
        (m, next(e for e in equivalents if e.matches(m))) for m in survivors if m not in unexplained
    ]
    total = tally(mutants, equivalents)
    lines = [
        "# Mutation testing",
        "",
        "Written by `make mutants` (mutation/run.py); do not edit by hand. mutmut "
        f"{metadata.version('mutmut')} changed the modules below one thing at a time and ran the "
        "unit and integration tests that reach each change. A mutant is *caught* when a test "
        "fails (or hangs) with it, *equivalent* when no caller could tell it from the code "
        "(each listed below with the reason, from mutation/equivalent.toml), and *survived* "
        "otherwise. Score = caught / all mutants; the target is "
        f"{TARGET:.0%}, with no survivor left unexplained. Log statements are not mutated: "
        "their words are for operators, and what a log line must never hold (a whole number "
        "or message body) is tested on its own.",
        "",
        f"Run on {datetime.now(UTC):%Y-%m-%d}"
        + (f", {seconds / 60:.0f} min on {os.cpu_count()} CPUs." if seconds is not None else ".")
        + f" Tests: {' '.join(t for t in TESTS if not t.startswith('--'))}, less the tests of "
        "files rather than code.",
        "",
        "| module | mutants | caught | equivalent | survived | score |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for module in MODULES:
        own = [m for m in mutants if m.module == module and m.status != NOT_CHECKED]
        t = tally(own, equivalents)
        lines.append(
            f"| `{module}` | {len(own)} | {t.caught} | {t.equivalent} | {t.survived} "
            f"| {t.score:.1%} |"
        )
    lines.append(
        f"| **all** | {len(mutants) - len(unchecked)} | {total.caught} | {total.equivalent} "
        f"| {total.survived} "
        f"| **{total.score:.1%}** |"
    )
    statuses = Counter(m.status for m in mutants)
    verdicts = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    lines += ["", f"mutmut's verdicts: {verdicts}"]
    if unchecked:
        lines += [
            "",
            f"**This run is incomplete:** it was stopped before it reached {len(unchecked)} of "
            f"the {len(mutants)} mutants, which the table and the score leave out (by module: "
            + ", ".join(
                f"`{module}` {n}"
                for module in MODULES
                if (n := sum(1 for m in unchecked if m.module == module))
            )
            + "). A resumed run also ends by trying its survivors again against fresh stats "
            "(recheck_uncaught), which a stopped run has not done: some survivors below may "
            "yet be caught by tests that already exist.",
        ]
    lines += ["", "## Survivors no test catches", ""]
    if not unexplained:
        lines.append("None.")
    for m in unexplained:
        lines += [f"- `{m.name}` ({m.status})", "", _diff_block(m), ""]
    lines += ["", "## Equivalent mutants", ""]
    if not explained:
        lines.append("None.")
    for m, e in explained:
        lines += [f"- `{m.name}`: {e.why}", "", _diff_block(m), ""]
    return "\n".join(lines).rstrip() + "\n"


def _diff_block(m: Mutant) -> str:
    body = [f"  - {ln}" for ln in m.removed.splitlines()]
    body += [f"  + {ln}" for ln in m.added.splitlines()]
    return "\n".join(["  ```diff", *body, "  ```"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=PROJECT_ROOT / "MUTANTS.md")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the last run in build/mutation, keeping the verdicts that still hold",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="report on the results in build/mutation (after `mutmut run NAME...` there has "
        "run some mutants again) instead of a new run",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    if not args.reuse:
        stage(keep_results=args.resume)
        run_mutmut(args.max_children)
        if args.resume:
            recheck_uncaught(args.max_children)
    mutants = read_mutants()
    if not mutants:
        raise SystemExit("mutmut reported no mutants: nothing was tested")
    equivalents = load_equivalents()
    # A resumed run's time is only its last part: not worth printing as the run's.
    seconds = None if args.reuse or args.resume else time.monotonic() - started
    args.output.write_text(render(mutants, equivalents, seconds))
    total = tally(mutants, equivalents)
    print(
        f"{args.output}: {total.score:.1%} of {total.caught + total.equivalent + total.survived} "
        f"mutants caught (of {len(mutants)}), "
        f"{total.equivalent} equivalent, {total.survived} survived unexplained"
    )
    complete = all(m.status != NOT_CHECKED for m in mutants)
    return 0 if complete and total.score >= TARGET and total.survived == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
