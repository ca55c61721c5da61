"""Reliability tests: clocks, retries, fallbacks, cleanup, the runaway guard,
hooks and stats, secrets, and fault injection against the local server."""
