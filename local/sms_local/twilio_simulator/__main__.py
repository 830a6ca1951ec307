"""``python -m sms_local.twilio_simulator``: run the simulator until Ctrl-C (see ``cli``)."""

from sms_local.twilio_simulator.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
