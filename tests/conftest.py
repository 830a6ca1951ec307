"""Settings shared by every test: AWS credentials that can never reach a real account."""

from __future__ import annotations

import os

# Set before any boto3 client exists; moto's fake credentials, a fixed region, no metrics flush.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "sms-gateway",  # as template.yaml: one logger tree
        "POWERTOOLS_METRICS_NAMESPACE": "SmsGateway",
        "POWERTOOLS_DEV": "false",
    }
)
os.environ.pop("AWS_PROFILE", None)
