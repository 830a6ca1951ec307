"""moto's JSON answers for DynamoDB and DynamoDB Streams, the same bytes at a fraction of the cost.

moto 5 builds every answer by walking the operation's output shape (moto/core/serialize.py). For
each member of each structure it asks an `XFormedAttributePicker` where the value is: six alias
providers are instantiated and asked in turn, each candidate key is also run through
`xform_name`, and a dotted key path is joined for the response transformers. An AttributeValue
is a structure of ten members, so every attribute of every item answered costs some sixty of
those lookups; in the end-to-end benchmark this was about three quarters of moto's processor
time, and moto's process the bottleneck of the whole local stack.

For a value that is a plain `dict` the picker's answer depends on nothing but the structure's
shape and the member's name: the providers look at the object only through `hasattr(obj,
"Meta")` and `type(obj).__name__`, both fixed for `dict`. So the candidate keys of each member
are computed once per structure shape, by moto's own picker, and reused. The walk itself is the
generic one, method for method (`_serialize_type_string`, `_base64`, the list's wrapper dance,
the order members are written in), only without the bookkeeping (`self.path`, the per-call
`getattr` of the method name) that nothing reads when there are no response transformers.

Whatever this cannot vouch for goes to moto's own code: any other serializer class, any other
service, a custom picker, response transformers, a structure whose value is not a plain dict.
tests/unit/test_moto_serializer.py compares the bytes against the unpatched serializer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import Enum
from typing import Any

from moto.core.constants import MISSING
from moto.core.model import Shape, StructureShape
from moto.core.serialize import (
    DEFAULT_ALIAS_PROVIDERS,
    AttributePicker,
    AttributePickerContext,
    BaseJSONSerializer,
    JSONSerializer,
    XFormedAttributePicker,
)
from moto.core.utils import get_value

# The services whose answers take the fast path: the ones the equality test covers.
FAST_SERVICES = frozenset({"dynamodb", "dynamodbstreams"})

_KNOWN_PROVIDERS = frozenset(DEFAULT_ALIAS_PROVIDERS)
_PICKERS = (AttributePicker, XFormedAttributePicker)

# One member of a structure: its name, its shape, and the keys moto's picker tries, in order.
_Member = tuple[str, Shape, tuple[str, ...], bool]

# id(structure shape), picker class, providers -> (the shape, kept alive so its id stays its own;
# the plan). moto's shapes live as long as its cached operation models. Shared by the server's
# threads without a lock: a race only computes the same plan twice.
_plans: dict[tuple[int, type, tuple[type, ...]], tuple[StructureShape, list[_Member]]] = {}

_MAX_PLANS = 4096

_moto_serialize_type_structure: Callable[..., None] = JSONSerializer._serialize_type_structure
_install_lock = threading.Lock()


def _plan(shape: StructureShape, picker: AttributePicker) -> list[_Member]:
    providers = tuple(picker.alias_providers)
    key = (id(shape), type(picker), providers)
    cached = _plans.get(key)
    if cached is not None and cached[0] is shape:
        return cached[1]
    members: list[_Member] = []
    for member_key, member_shape in shape.members.items():
        # moto sets this before asking the picker (two providers read it); so do we
        member_shape.parent = shape  # type: ignore[attr-defined]
        context = AttributePickerContext(obj={}, key=member_key, shape=member_shape)
        candidates = tuple(picker.get_possible_keys(context))
        dotted = any("." in candidate for candidate in candidates)
        members.append((member_key, member_shape, candidates, dotted))
    if len(_plans) >= _MAX_PLANS:
        # moto caches its models, so this never fills; were shapes ever built per request, the
        # cache would otherwise keep every one of them alive
        _plans.clear()
    _plans[key] = (shape, members)
    return members


def _fast_picker(serializer: JSONSerializer) -> AttributePicker | None:
    """The serializer's picker when its answer for a dict depends on the shape alone."""
    picker: AttributePicker = serializer._value_picker
    if type(picker) not in _PICKERS or picker.response_transformers:
        return None
    if not all(provider in _KNOWN_PROVIDERS for provider in picker.alias_providers):
        return None
    return picker


def _serialize(
    serializer: JSONSerializer,
    picker: AttributePicker,
    serialized: dict[str, Any],
    value: Any,
    shape: Shape,
    key: str,
) -> None:
    """`ResponseSerializer._serialize` without `self.path` (read only by response transformers,
    which a fast serializer has none of), dispatching the types DynamoDB answers hold."""
    type_name = shape.type_name
    if type_name == "structure":
        assert isinstance(shape, StructureShape)
        _structure(serializer, picker, serialized, value, shape, key)
    elif type_name == "string":
        # BaseJSONSerializer._serialize_type_string
        if type(value) is not str:
            if isinstance(value, Enum):
                value = value.value
            value = str(value) if value not in [None, {}, []] else value
        serialized[shape.serialization.get("name", key)] = value
    elif type_name == "map":
        # BaseJSONSerializer._serialize_type_map: the map is placed before it is filled
        map_obj: dict[str, Any] = {}
        serialized[shape.serialization.get("name", key)] = map_obj
        value_shape = shape.value  # type: ignore[attr-defined]
        for sub_key, sub_value in value.items():
            _serialize(serializer, picker, map_obj, sub_value, value_shape, sub_key)
    elif type_name == "list":
        # BaseJSONSerializer._serialize_type_list, wrapper and all
        member = shape.member  # type: ignore[attr-defined]
        item_key = member.name
        list_obj = []
        for list_item in value:
            wrapper: dict[str, Any] = {}
            _serialize(serializer, picker, wrapper, list_item, member, item_key)
            list_obj.append(wrapper.get(item_key, list_item))  # moto: `in`, then [ ]
        serialized[shape.serialization.get("name", key)] = list_obj
    elif type_name == "blob":
        serialized[shape.serialization.get("name", key)] = serializer._base64(value)
    elif type_name == "boolean":
        serialized[shape.serialization.get("name", key)] = value  # _default_serialize
    else:
        # timestamps, numbers, ...: moto's own method, as `_serialize` would find it
        method = getattr(serializer, f"_serialize_type_{type_name}", serializer._default_serialize)
        method(serialized, value, shape, key)


def _structure(
    serializer: JSONSerializer,
    picker: AttributePicker,
    serialized: dict[str, Any],
    value: Any,
    shape: StructureShape,
    key: str,
) -> None:
    if type(value) is not dict or shape.is_document_type:
        _moto_serialize_type_structure(serializer, serialized, value, shape, key)
        return
    # ResponseSerializer._serialize_type_structure, with the picker's keys looked up once
    wrapper: dict[str, Any] = {} if key else serialized
    for member_key, member_shape, candidates, dotted in _plan(shape, picker):
        member_value = None
        for candidate in candidates:
            found = (
                get_value(value, candidate, MISSING) if dotted else value.get(candidate, MISSING)
            )
            if found is not MISSING:
                member_value = found
                break
        if member_value is not None:
            _serialize(serializer, picker, wrapper, member_value, member_shape, member_key)
    if key:
        serialized[shape.serialization.get("name", key)] = wrapper


def _serialize_type_structure(
    self: BaseJSONSerializer, serialized: Any, value: Any, shape: StructureShape, key: str
) -> None:
    picker = None
    if type(self) is JSONSerializer and self.service_model.service_name in FAST_SERVICES:
        picker = _fast_picker(self)
    if picker is None:
        _moto_serialize_type_structure(self, serialized, value, shape, key)
        return
    assert isinstance(self, JSONSerializer)
    _structure(self, picker, serialized, value, shape, key)


def install_fast_serializer() -> None:
    """Make moto's JSON serializer take the fast path for DynamoDB's and DynamoDB Streams'
    answers. Idempotent; for the whole process."""
    with _install_lock:
        if JSONSerializer._serialize_type_structure is not _serialize_type_structure:
            JSONSerializer._serialize_type_structure = _serialize_type_structure  # type: ignore[method-assign]


def uninstall_fast_serializer() -> None:
    """moto's serializer as it came (the equality test serializes with both)."""
    with _install_lock:
        if "_serialize_type_structure" in vars(JSONSerializer):
            # moto defines it on BaseJSONSerializer only: inherit it again, as before install
            del JSONSerializer._serialize_type_structure
