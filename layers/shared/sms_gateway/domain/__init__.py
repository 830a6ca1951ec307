"""What a message, a use case and their rules are: models, the status table, segments, phone
rules and errors. No I/O: nothing here calls AWS, a provider or the network."""
