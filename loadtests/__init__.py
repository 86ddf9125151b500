"""Load-test kit: locust scenarios, seeding and threshold checks."""
