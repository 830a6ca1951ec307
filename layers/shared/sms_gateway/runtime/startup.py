"""The cold start of a function: imported first by every functions/*/app.py (before Powertools),
which calls `finish()` once its module-level set-up is done.

Importing this module:

- pauses the garbage collector. An import allocates hundreds of thousands of objects that live
  as long as the process, and the collector would scan them again and again while they are being
  made (about a tenth of a cold start). `finish()` moves them to the permanent generation
  (`gc.freeze()`), where no later collection scans them either, and turns the collector back on;
- makes a few packages load without their package `__init__` (`lazy_package`): Powertools'
  `event_handler` and `utilities.data_classes`, whose `__init__` imports every resolver and event
  class Powertools has (AppSync, Bedrock, VPC Lattice, asyncio, ...) although a function here
  uses one resolver and a few events; phonenumbers', which imports its formatter-as-you-type,
  matcher and short-number code that no function uses; and boto3's (below). Importing a
  submodule directly does not avoid the `__init__`: Python runs a package's `__init__` before
  any of its submodules.

A lazy package is a module object made from the package's own spec but not executed: its
submodules import as usual (its `__path__` is the real one), and a name its `__init__` would
have bound is resolved on first access (module `__getattr__`, PEP 562): a name the `__init__`
imports `from .submodule` comes from that submodule alone; any other name (`__all__`,
`__version__`, something computed) runs the real `__init__` in the module, once, which then
holds exactly what a plain import would have given. Nothing is ever missing, only later.
"""

from __future__ import annotations

import ast
import gc
import importlib
import importlib.util
import os
import sys
import threading
from types import ModuleType
from typing import Any

# The packages whose __init__ costs a cold start most and gives a function least.
LAZY_PACKAGES = (
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.utilities.data_classes",
    "phonenumbers",
    # What boto3 gives Powertools is boto3.dynamodb.types (its idempotency layer; store.dynamo
    # converts values itself), and a module attribute it never uses unless given no client: its
    # __init__ builds a session, the resource factory and its documentation generator.
    "boto3",
)

_lock = threading.RLock()
_collector_paused = False


def _from_imports(source: str, package: str) -> dict[str, tuple[str, str]]:
    """name bound by the package's __init__ -> (submodule, name in it), for the top-level
    `from .sub import name [as alias]` (or `from package.sub import ...`) statements."""
    found: dict[str, tuple[str, str]] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ImportFrom) or not node.module:
            continue
        if node.level == 1:
            module = f"{package}.{node.module}"
        elif node.level == 0 and node.module.startswith(package + "."):
            module = node.module
        else:
            continue
        for alias in node.names:
            if alias.name != "*":
                found[alias.asname or alias.name] = (module, alias.name)
    return found


class _LazyInit:
    """The `__getattr__` of a lazy package (see the module's docstring)."""

    def __init__(self, module: ModuleType, source: str) -> None:
        self.module = module
        self.source = source
        self.names: dict[str, tuple[str, str]] | None = None
        self.initialized = False

    def __call__(self, name: str) -> Any:
        package = self.module.__name__
        with _lock:
            if name in self.module.__dict__:  # resolved meanwhile, by another thread
                return self.module.__dict__[name]
            if not self.initialized and not name.startswith("__"):
                if self.names is None:
                    self.names = _from_imports(self.source, package)
                if name in self.names:
                    module_name, attribute = self.names[name]
                    value = getattr(importlib.import_module(module_name), attribute)
                    setattr(self.module, name, value)
                    return value
                if importlib.util.find_spec(f"{package}.{name}") is not None:
                    return importlib.import_module(f"{package}.{name}")
            if not self.initialized:
                self.initialize()
                if name in self.module.__dict__:
                    return self.module.__dict__[name]
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def bind_shadowed(self) -> None:
        """Bind now each name the __init__ imports from a submodule of the same name (`from
        .event_source import event_source`): importing that submodule sets the package's
        attribute to the module, which would hide the name for good, where the real __init__
        binds the name after it."""
        package = self.module.__name__
        if self.names is None:
            self.names = _from_imports(self.source, package)
        for name, (module_name, _) in self.names.items():
            if module_name == f"{package}.{name}":
                self(name)

    def initialize(self) -> None:
        """Run the real __init__ in the module, as a plain import would have."""
        self.initialized = True
        spec = self.module.__spec__
        assert spec is not None and spec.loader is not None
        if self.module.__dict__.get("__getattr__") is self:
            del self.module.__dict__["__getattr__"]
        spec.loader.exec_module(self.module)


def lazy_package(name: str) -> bool:
    """Put `name` in sys.modules as a lazy package; False if it was imported already (or is
    not installed, or not a package), which leaves everything as it was."""
    with _lock:
        if name in sys.modules:
            return False
        spec = importlib.util.find_spec(name)  # imports the parents, not the package
        if spec is None or spec.submodule_search_locations is None or spec.loader is None:
            return False
        get_source = getattr(spec.loader, "get_source", None)
        source = get_source(name) if get_source is not None else None
        if not isinstance(source, str):
            return False
        module = importlib.util.module_from_spec(spec)
        lazy = _LazyInit(module, source)
        setattr(module, "__getattr__", lazy)  # noqa: B010 - PEP 562
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)
        lazy.bind_shadowed()
        return True


def initialize(name: str) -> None:
    """Run a lazy package's real __init__ now (nothing if it has run, or is not lazy)."""
    module = sys.modules.get(name)
    lazy = module.__dict__.get("__getattr__") if module is not None else None
    if isinstance(lazy, _LazyInit):
        with _lock:
            if not lazy.initialized:
                lazy.initialize()


def is_lazy(name: str) -> bool:
    """Whether `name` is a lazy package whose __init__ has not run."""
    module = sys.modules.get(name)
    lazy = module.__dict__.get("__getattr__") if module is not None else None
    return isinstance(lazy, _LazyInit) and not lazy.initialized


def begin() -> None:
    """Pause the collector (unless something else already has) and make LAZY_PACKAGES lazy."""
    global _collector_paused
    if gc.isenabled():
        gc.disable()
        _collector_paused = True
    for name in LAZY_PACKAGES:
        lazy_package(name)


def finish() -> None:
    """The import is done. With SnapStart on, the init phase also does what the snapshot should
    keep (runtime.snapstart). Then what was made is never scanned by the collector, which runs
    again."""
    global _collector_paused
    if os.environ.get("SMS_GATEWAY_SNAPSTART"):  # imported only when it may have work
        from sms_gateway.runtime import snapstart

        snapstart.prepare()
    if _collector_paused:
        _collector_paused = False
        gc.freeze()
        gc.enable()


begin()
