"""sms_gateway.runtime.snapstart: with SnapStart on, the init phase makes what the snapshot keeps
and registers the restore hook; the hook gives each resumed environment its own random state,
AWS clients, credentials and caches."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from sms_gateway.runtime import snapstart
from sms_gateway.store import aws_clients, secrets
from tests.unit.test_startup import FUNCTIONS

# Lambda's runtime provides snapshot_restore_py; this stand-in records what is registered.
_HOOKS_MODULE = """
registered = []
def register_after_restore(func, *args, **kwargs):
    registered.append(func)
def register_before_snapshot(func, *args, **kwargs):
    registered.append(func)
"""

_PROBE = """
import importlib.util, json, random, sys
spec = importlib.util.spec_from_file_location("lambda_function_module", {path!r})
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
from sms_gateway.store import aws_clients
hooks = sys.modules.get("snapshot_restore_py")
result = {{
    "hooks": [f.__module__ + "." + f.__name__ for f in hooks.registered] if hooks else None,
    "clients_made": aws_clients.dynamodb.cache_info().currsize,
}}
if hooks and hooks.registered:
    loader = aws_clients.botocore_session().get_component("data_loader")
    state = random.getstate()
    hooks.registered[0]()
    result["random_reseeded"] = random.getstate() != state
    result["clients_after_restore"] = aws_clients.dynamodb.cache_info().currsize
    aws_clients.dynamodb()
    result["models_kept"] = aws_clients.botocore_session().get_component("data_loader") is loader
print(json.dumps(result))
"""


def _probe(
    tmp_path: Path, *, enabled: str | None, with_hooks: bool, initialization: str = "snap-start"
) -> dict[str, object]:
    path, env = FUNCTIONS["SendFunction"]
    hooks_dir = tmp_path / "hooks"
    hooks_dir.mkdir()
    if with_hooks:
        (hooks_dir / "snapshot_restore_py.py").write_text(_HOOKS_MODULE)
    env = {**env, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(hooks_dir)}
    env.pop(snapstart.ENABLED_VARIABLE, None)
    if enabled is not None:
        env[snapstart.ENABLED_VARIABLE] = enabled
    env[snapstart.INITIALIZATION_TYPE_VARIABLE] = initialization
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE.format(path=path)],
        env=env,
        cwd=Path(path).parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, object] = json.loads(completed.stdout.splitlines()[-1])
    return result


def test_with_snapstart_the_init_phase_warms_up_and_registers_the_restore_hook(
    tmp_path: Path,
) -> None:
    result = _probe(tmp_path, enabled="true", with_hooks=True)
    assert result["hooks"] == ["sms_gateway.runtime.snapstart.after_restore"]
    assert result["clients_made"] == 1
    assert result["random_reseeded"] is True
    assert result["clients_after_restore"] == 0
    assert result["models_kept"] is True


@pytest.mark.parametrize(
    ("enabled", "with_hooks"), [("false", True), (None, True), ("true", False)]
)
def test_without_snapstart_or_its_runtime_nothing_happens_at_init(
    tmp_path: Path, enabled: str | None, with_hooks: bool
) -> None:
    result = _probe(tmp_path, enabled=enabled, with_hooks=with_hooks)
    assert result["hooks"] in (None, [])
    assert result["clients_made"] == 0


def test_a_plain_cold_start_of_a_snapstart_stack_warms_nothing_up(tmp_path: Path) -> None:
    # A function invoked on $LATEST (no snapshot) starts "on-demand": nothing would keep a
    # warm-up, and no restore will ever come.
    result = _probe(tmp_path, enabled="true", with_hooks=True, initialization="on-demand")
    assert result["hooks"] in (None, [])
    assert result["clients_made"] == 0


def test_environments_resumed_from_one_snapshot_draw_different_random_numbers() -> None:
    snapshot = random.getstate()
    draws = []
    for _ in range(2):
        random.setstate(snapshot)
        snapstart.after_restore()
        draws.append([random.random() for _ in range(4)])
    assert draws[0] != draws[1]


def test_a_restore_drops_cached_secrets_and_clients() -> None:
    aws_clients.reset_clients()
    client = aws_clients.dynamodb()
    secrets._missing["sms/twilio/ACgone"] = float("inf")
    snapstart.after_restore()
    assert "sms/twilio/ACgone" not in secrets._missing
    assert aws_clients.dynamodb() is not client
    aws_clients.reset_clients()


def test_the_boto3_session_wraps_the_clients_botocore_session() -> None:
    aws_clients.reset_clients()
    session = aws_clients.session()
    assert session._session is aws_clients.botocore_session()
    aws_clients.reset_clients()
