"""Helpers shared by the driver and the reliability tests: ``adapters`` holds the
async-shaped adapter over the sync and the async API, ``fixtures`` the fixtures
that run each test body for the sync API, asyncio and trio. ``requests`` holds
the valid requests the built-in server's own tests send it in raw HTTP."""
