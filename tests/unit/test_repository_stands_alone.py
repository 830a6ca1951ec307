"""The repository stands alone: no tracked file sends a reader to documents outside it (the
design lives in docs/architecture.md)."""

from __future__ import annotations

import re
import subprocess

from sms_local.template import PROJECT_ROOT

OUTSIDE = re.compile(r"\.\./shared\b|\bDESIGN\.md\b")


def test_no_tracked_file_points_outside_the_repository() -> None:
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_ROOT, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    offenders = [
        f"{name}:{number}"
        for name in tracked
        if name
        and name != "tests/unit/test_repository_stands_alone.py"
        and (PROJECT_ROOT / name).is_file()
        for number, line in enumerate(
            (PROJECT_ROOT / name).read_text(errors="replace").splitlines(), start=1
        )
        if OUTSIDE.search(line)
    ]
    assert offenders == []
    assert (PROJECT_ROOT / "docs" / "architecture.md").is_file()
