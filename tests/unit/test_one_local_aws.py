"""One place starts moto: sms_local.aws_emulator, which makes its DynamoDB atomic per item. A
test, the local stack or a benchmark that started moto's server itself would race on storage
that AWS never lets race."""

from __future__ import annotations

import re
from pathlib import Path

from sms_local.template import PROJECT_ROOT

EMULATOR = PROJECT_ROOT / "local" / "sms_local" / "aws_emulator.py"
# moto's own ways to start a server: its class, its module and its command-line entry point.
STARTS_MOTO = re.compile(r"ThreadedMotoServer|moto\.server|moto\.moto_server|moto_server\b")
SOURCE_FOLDERS = ("bench", "functions", "layers", "local", "tests")


def test_only_the_emulator_module_starts_moto() -> None:
    offenders = [
        str(path.relative_to(PROJECT_ROOT))
        for folder in SOURCE_FOLDERS
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py"))
        if path not in (EMULATOR, Path(__file__).resolve()) and STARTS_MOTO.search(path.read_text())
    ]
    assert offenders == []
    assert STARTS_MOTO.search(EMULATOR.read_text())
