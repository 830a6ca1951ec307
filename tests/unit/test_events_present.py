"""events/ holds a sample event for every function: events/<function directory>*.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sms_local import template as tpl

EVENTS = Path(__file__).resolve().parents[2] / "events"


def function_dirs() -> dict[str, str]:
    """Function logical id -> the directory name of its code (functions/<name>)."""
    return {
        name: Path(spec.code_uri).name
        for name, spec in tpl.functions(tpl.project_template()).items()
    }


def function_of(event_file: Path) -> str:
    """The function an event file belongs to: the longest directory name it starts with."""
    matches = [
        (len(directory), name)
        for name, directory in function_dirs().items()
        if event_file.stem == directory or event_file.stem.startswith(f"{directory}_")
    ]
    assert matches, f"{event_file.name} names no function directory"
    return max(matches)[1]


def event_files() -> list[Path]:
    return sorted(EVENTS.glob("*.json"))


@pytest.mark.parametrize("function", sorted(function_dirs()))
def test_every_function_has_a_sample_event(function: str) -> None:
    assert any(function_of(f) == function for f in event_files()), (
        f"add events/{function_dirs()[function]}.json"
    )


@pytest.mark.parametrize("event_file", event_files(), ids=lambda p: p.name)
def test_every_event_is_a_json_object_for_a_function(event_file: Path) -> None:
    assert isinstance(json.loads(event_file.read_text()), dict)
    function_of(event_file)
