"""The command line, ``python -m sms_local.twilio_simulator``: serve until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Final

from sms_local.twilio_simulator.config import SimulatorConfig
from sms_local.twilio_simulator.server import TwilioSimulator

_STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


def _account_arg(text: str) -> tuple[str, str]:
    sid, separator, token = text.partition(":")
    if not separator or not sid or not token:
        raise argparse.ArgumentTypeError(f"expected SID:TOKEN, got {text!r}")
    return sid, token


def _service_arg(text: str) -> tuple[str, list[str]]:
    sid, separator, senders = text.partition(":")
    pool = [sender.strip() for sender in senders.split(",") if sender.strip()]
    if not separator or not sid or not pool:
        raise argparse.ArgumentTypeError(f"expected MG...:SENDER[,SENDER...], got {text!r}")
    return sid, pool


def _service_account_arg(text: str) -> tuple[str, str]:
    service_sid, separator, account_sid = text.partition(":")
    if not separator or not service_sid or not account_sid:
        raise argparse.ArgumentTypeError(f"expected MG...:AC..., got {text!r}")
    return service_sid, account_sid


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sms_local.twilio_simulator",
        description="Run the Twilio Messaging API simulator on 127.0.0.1 until Ctrl-C.",
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--account", type=_account_arg, action="append", required=True)
    parser.add_argument("--service", type=_service_arg, action="append", default=[])
    parser.add_argument(
        "--service-account",
        type=_service_account_arg,
        action="append",
        default=[],
        metavar="MG...:AC...",
        help="the account that owns a service (signs its incoming messages); a service not"
        " named here belongs to the only --account when exactly one is given",
    )
    parser.add_argument(
        "--inbound-url",
        default=None,
        metavar="URL",
        help="the services' Inbound Request URL, where POST /_simulator/inbound posts",
    )
    parser.add_argument("--no-sticky-sender", action="store_true")
    parser.add_argument("--no-area-code-geomatch", action="store_true")
    parser.add_argument("--duplicate-callbacks", action="store_true")
    parser.add_argument("--reorder-callbacks", action="store_true")
    parser.add_argument(
        "--reject-unsubscribed-synchronously",
        action="store_true",
        help="answer a service send to +15005550004 with 400 21610 instead of a failed callback",
    )
    parser.add_argument(
        "--callback-delays",
        type=float,
        nargs=2,
        default=(0.05, 0.05),
        metavar=("TO_SENT", "TO_FINAL"),
    )
    return parser


def _config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    accounts = dict(args.account)
    services = dict(args.service)
    # With a single account every service is its own; otherwise only --service-account says.
    only_account = next(iter(accounts)) if len(accounts) == 1 else None
    service_accounts = {} if only_account is None else dict.fromkeys(services, only_account)
    service_accounts.update(args.service_account)
    return SimulatorConfig(
        accounts=accounts,
        services=services,
        sticky_sender=not args.no_sticky_sender,
        area_code_geomatch=not args.no_area_code_geomatch,
        callback_delays=(args.callback_delays[0], args.callback_delays[1]),
        duplicate_callbacks=args.duplicate_callbacks,
        reorder_callbacks=args.reorder_callbacks,
        reject_unsubscribed_synchronously=args.reject_unsubscribed_synchronously,
        inbound_url=args.inbound_url,
        service_accounts=service_accounts,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    simulator = TwilioSimulator(_config_from_args(args), port=args.port)
    simulator.start()
    print(f"Twilio simulator listening on {simulator.base_url} (Ctrl-C to stop)", flush=True)
    try:
        _wait_for_termination()
    finally:
        simulator.stop()
    return 0


def _wait_for_termination() -> None:
    done = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    # Installed explicitly: a shell starting us in the background leaves SIGINT ignored, and
    # SIGTERM (docker stop, kill) deserves the same clean shutdown as Ctrl-C.
    previous = {signum: signal.signal(signum, request_stop) for signum in _STOP_SIGNALS}
    try:
        # A bounded wait keeps the main thread returning to the interpreter to run the handler.
        while not done.wait(0.5):
            pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
