"""HTTP API surface: the resolver with its error mapping, the caller identity, and the routes."""
