"""Fixtures for the end-to-end tests: real stokend daemons in private directories.

stokend_factory (per test) and module_stokend_factory (per module) start a
daemon with the default configuration plus overrides, e.g.
`module_stokend_factory(limits={"max_recipients": 2})`; `mta` is a default
daemon shared by a module. On teardown each daemon gets SIGTERM and the test
fails if it does not exit 0 within 10 seconds or its log shows a sanitizer
report. Before each test the delivered mail of running daemons is cleared; after
each test they must still be running with a clean log.

A test marked `@pytest.mark.once` runs in the normal build only: it checks
what a third-party tool reads or does (pflogsumm, promtool, an install), which
the sanitizer build would repeat slowly and learn nothing more from. CMake sets
STOKEND_SANITIZED=1 for the sanitizer build's run.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from stokend_daemon import RUNNING, Stokend


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "once: run in the normal build only, not again under the sanitizers")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("STOKEND_SANITIZED") != "1":
        return
    skip = pytest.mark.skip(reason="runs once, in the normal build (no sanitizer finding to add)")
    for item in items:
        if "once" in item.keywords:
            item.add_marker(skip)


class _Factory:
    def __init__(self, base: Path):
        self.base = base
        self.daemons: list[Stokend] = []

    def __call__(self, users: dict[str, str] | None = None,
                 coi_filters: dict[str, str] | None = None,
                 directory: Path | None = None, **overrides) -> Stokend:
        """Starts a daemon. `directory`: reuse an earlier daemon's directory
        (pass users={} then, the users file is already there)."""
        if directory is None:
            directory = Path(tempfile.mkdtemp(prefix="stokend-", dir=self.base))
        daemon = Stokend(directory, overrides, users=users, coi_filters=coi_filters)
        self.daemons.append(daemon)
        daemon.start()
        RUNNING.append(daemon)
        return daemon

    def close(self) -> None:
        problems = []
        for daemon in self.daemons:
            problems += daemon.stop()
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def stokend_factory(tmp_path):
    """Starts daemons for one test: stokend_factory(limits={...}, ...)."""
    factory = _Factory(tmp_path)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def module_stokend_factory(tmp_path_factory):
    """Starts daemons shared by the tests of one module."""
    factory = _Factory(tmp_path_factory.mktemp("module"))
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def mta(module_stokend_factory) -> Stokend:
    """A daemon with the default configuration, shared by a module."""
    return module_stokend_factory()


@pytest.fixture(autouse=True)
def _daemon_hygiene():
    """Before each test: no mail left from earlier tests. After: every shared
    daemon is still running and its log shows no sanitizer report."""
    for daemon in RUNNING:
        if daemon.running():
            daemon.clear_mail()
    yield
    for daemon in list(RUNNING):
        if daemon.proc is not None and daemon.proc.poll() is not None:
            RUNNING.remove(daemon)
            pytest.fail(f"stokend exited during the test with status {daemon.proc.returncode}:\n"
                        f"{daemon.log_tail(60)}", pytrace=False)
        marker = daemon.sanitizer_report()
        if marker:
            RUNNING.remove(daemon)
            pytest.fail(f"sanitizer report ({marker!r}) in the stokend log:\n{daemon.log_tail(60)}",
                        pytrace=False)
