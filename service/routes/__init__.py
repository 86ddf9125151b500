"""HTTP route handlers, grouped by the kind of user they serve."""
