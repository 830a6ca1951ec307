"""How long a record can be hidden in an SQS queue before its next delivery: SQS refuses a
visibility timeout reaching past 12 hours from the receive, and the invocation that hides it has
already used some of that (at most Lambda's 15 minutes). The handoff's backoff and the status
webhooks' retry schedule both wait this way."""

MAX_RETRY_DELAY_SECONDS = 12 * 3600 - 15 * 60
