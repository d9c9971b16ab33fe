"""In CI (the environment variable CI is set, as .ci/run does) a skipped test is a failed
test: CI installs Chromium and runs as root so that the browser and tmpfs tests run there,
and a skip would hide that they did not. Skips that only a GPU machine takes are allowed."""
from __future__ import annotations

import os

import pytest

# Skip reasons that depend on the hardware, not on the CI setup.
HARDWARE = ("a GPU is here", "an NVIDIA driver is present")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not os.environ.get("CI") or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if reason.removeprefix("Skipped: ").startswith(HARDWARE):
        return
    report.outcome = "failed"
    report.longrepr = f"skipped in CI, where every test must run ({reason})"
