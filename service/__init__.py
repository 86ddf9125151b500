"""OneCode HTTP edge: app factory, settings, routes, auth and problem details."""
