"""The only modules that call AWS: DynamoDB (messages, use cases, opt-outs, API keys,
idempotency, the status machine's conditional writes), SQS, EventBridge Scheduler and Secrets
Manager. Each speaks the domain's types, never HTTP."""
