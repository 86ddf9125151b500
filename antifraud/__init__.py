"""Anti-fraud: velocity limits, clone and diversion detection, risk verdicts."""
