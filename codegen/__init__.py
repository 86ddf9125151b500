"""Code issuance: brand keys, the signed code format, batches, aggregation and print exports."""
