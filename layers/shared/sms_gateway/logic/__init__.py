"""The rules, in order: send, query, schedule and cancel, hand off, apply status updates,
administer use cases. Logic decides; it reads and writes through store/ and reaches a provider
only through providers/."""
