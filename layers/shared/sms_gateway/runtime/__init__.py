"""A function's life outside its requests: the cold start (startup) and, with SnapStart, the
snapshot and its restore (snapstart)."""
