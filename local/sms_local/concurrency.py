"""How many sandboxes (worker processes) the local stack may run per function at once.

Written as `N` (every function), `Function=N,...` (those functions; the others get the default)
or both (`3,HandoffFunction=6`). It comes from `--concurrency`, else from the environment
variable SMS_LOCAL_CONCURRENCY, else it is the machine's cores: more sandboxes than cores only
queue for the CPU here, where on AWS each would have its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

ENVIRONMENT_VARIABLE = "SMS_LOCAL_CONCURRENCY"


def machine_cores() -> int:
    return os.process_cpu_count() or os.cpu_count() or 1


@dataclass(frozen=True)
class Concurrency:
    default: int
    per_function: Mapping[str, int] = field(default_factory=dict)

    def of(self, function: str) -> int:
        return self.per_function.get(function, self.default)


def parse(text: str, default: int | None = None) -> Concurrency:
    """`text` as described in the module; ValueError when it is not."""
    fallback = machine_cores() if default is None else default
    per_function: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, equals, number = part.rpartition("=")
        value = _positive(number, part)
        if equals:
            if not name.strip():
                raise ValueError(f"concurrency {part!r}: no function name before '='")
            per_function[name.strip()] = value
        else:
            fallback = value
    return Concurrency(fallback, per_function)


def from_environment(environ: Mapping[str, str] | None = None) -> Concurrency:
    return parse((os.environ if environ is None else environ).get(ENVIRONMENT_VARIABLE, ""))


def _positive(number: str, part: str) -> int:
    try:
        value = int(number.strip())
    except ValueError:
        raise ValueError(f"concurrency {part!r}: not a whole number") from None
    if value < 1:
        raise ValueError(f"concurrency {part!r}: must be at least 1")
    return value
