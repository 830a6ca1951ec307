"""Reading messages back, scoped to the caller's workspace."""

from __future__ import annotations

import re
from collections.abc import Mapping

from sms_gateway.domain.errors import InboundMessageNotFoundError, ValidationError
from sms_gateway.domain.ids import is_uuid
from sms_gateway.domain.inbound import InboundMessage
from sms_gateway.domain.messages import (
    DEFAULT_PAGE_SIZE,
    EXTERNAL_ID_PATTERN,
    MAX_EXTERNAL_ID_CHARS,
    MAX_PAGE_SIZE,
    MessageStatus,
)
from sms_gateway.store import inbound_store, message_store, use_case_store
from sms_gateway.store.inbound_store import InboundPage
from sms_gateway.store.message_store import MessagePage

_PAGE_SIZE = re.compile(r"[0-9]{1,3}")
_EXTERNAL_ID = re.compile(EXTERNAL_ID_PATTERN)
_LIST_PARAMS = frozenset({"use_case_id", "status", "limit", "cursor", "external_id"})
_INBOUND_LIST_PARAMS = frozenset({"use_case_id", "from", "limit", "cursor"})
_E164 = re.compile(r"\+[0-9]{8,15}")


def list_messages_for(workspace_id: str, params: Mapping[str, str], *, test: bool) -> MessagePage:
    """The workspace's messages of one mode: a test key (`test`) lists test messages only."""
    _refuse_unknown(params, _LIST_PARAMS)
    use_case_id = _parse_use_case_id(params.get("use_case_id"))
    status = _parse_status(params.get("status"))
    limit = _parse_limit(params.get("limit"))
    external_id = _parse_external_id(params.get("external_id"))
    if use_case_id is not None and not _is_own_use_case(workspace_id, use_case_id):
        # The documented answer for a use case that lists nothing: an empty page. Its index
        # partition is another workspace's (or nobody's): never read it, never hand out a cursor
        # into it.
        return MessagePage([], None)
    return message_store.list_messages(
        workspace_id=workspace_id,
        test=test,
        use_case_id=use_case_id,
        status=status,
        limit=limit,
        cursor=params.get("cursor") or None,
        external_id=external_id,
    )


def list_inbound_for(workspace_id: str, params: Mapping[str, str], *, test: bool) -> InboundPage:
    """The workspace's inbound messages of one mode, filtered by use case and sender."""
    _refuse_unknown(params, _INBOUND_LIST_PARAMS)
    use_case_id = _parse_use_case_id(params.get("use_case_id"))
    from_number = params.get("from") or None
    if from_number is not None and not _E164.fullmatch(from_number):
        raise ValidationError(
            "from must be a number in E.164 format: '+' followed by 8 to 15 digits",
            errors=[{"field": "from", "issue": "not E.164"}],
        )
    limit = _parse_limit(params.get("limit"))
    if use_case_id is not None and not _is_own_use_case(workspace_id, use_case_id):
        return InboundPage([], None)
    return inbound_store.list_inbound(
        workspace_id=workspace_id,
        test=test,
        use_case_id=use_case_id,
        from_number=from_number,
        limit=limit,
        cursor=params.get("cursor") or None,
    )


def get_inbound_for(workspace_id: str, inbound_id: str, *, test: bool) -> InboundMessage:
    """Another workspace's, or the other mode's, is answered exactly as a missing one."""
    found = inbound_store.get_inbound(inbound_id) if is_uuid(inbound_id) else None
    if found is None or found.workspace_id != workspace_id or found.test is not test:
        raise InboundMessageNotFoundError("inbound message not found", inbound_id=inbound_id)
    return found


def _refuse_unknown(params: Mapping[str, str], known: frozenset[str]) -> None:
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValidationError(
            "unknown query parameter", errors=[{"field": n, "issue": "unknown"} for n in unknown]
        )


def _parse_use_case_id(raw: str | None) -> str | None:
    if raw and not is_uuid(raw):
        raise ValidationError(
            "use_case_id must be a UUID", errors=[{"field": "use_case_id", "issue": "not a UUID"}]
        )
    return raw or None


def _parse_external_id(raw: str | None) -> str | None:
    """The send's rule (1 to 255 characters, no control characters); empty means no filter,
    as for the other parameters."""
    if not raw:
        return None
    if not _EXTERNAL_ID.fullmatch(raw):
        raise ValidationError(
            f"external_id must be 1 to {MAX_EXTERNAL_ID_CHARS} characters, "
            "without control characters",
            errors=[{"field": "external_id", "issue": "invalid"}],
        )
    return raw


def _is_own_use_case(workspace_id: str, use_case_id: str) -> bool:
    """A deleted use case of the workspace still counts: its messages remain the workspace's.
    The cached read is safe here, since a use case never changes workspace."""
    use_case = use_case_store.get_use_case_cached(use_case_id)
    return use_case is not None and use_case.workspace_id == workspace_id


def _parse_status(raw: str | None) -> MessageStatus | None:
    if not raw:
        return None
    try:
        return MessageStatus(raw)
    except ValueError as exc:
        allowed = ", ".join(s.value for s in MessageStatus)
        raise ValidationError(
            f"status must be one of: {allowed}", errors=[{"field": "status", "issue": "unknown"}]
        ) from exc


def _parse_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    # Not str.isdigit(): it accepts digits such as '²' that int() refuses, and int() refuses a
    # string of more than 4,300 digits.
    if not _PAGE_SIZE.fullmatch(raw) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise ValidationError(
            f"limit must be an integer from 1 to {MAX_PAGE_SIZE}",
            errors=[{"field": "limit", "issue": "out of range"}],
        )
    return int(raw)


_PAGE_PARAMS = frozenset({"limit", "cursor"})


def page_params(params: Mapping[str, str]) -> tuple[int, str | None]:
    """`limit` and `cursor` of a listing that takes nothing else (templates, sender IDs)."""
    _refuse_unknown(params, _PAGE_PARAMS)
    return _parse_limit(params.get("limit")), params.get("cursor") or None
