"""Shared test plumbing: system programs some tests need, and a throwaway PostgreSQL server.

**System programs** (the PostgreSQL server, Chromium): a fresh machine may lack them, so a
test that needs one calls `require_program(...)` (a fixture returning `find_program`).
When the program is missing the test is skipped with the reason, and the run ends with
a NOTICE line saying how many tests were skipped and how to install what they need —
unless `BRIDGE_TEST_STRICT=1` (set by `.ci/run`), where a missing program fails them, so
CI can never go green by skipping.

**PostgreSQL**: one cluster per test session (initdb + pg_ctl in a temporary directory,
on a free port on 127.0.0.1, started only when a test asks for it); each test gets a
fresh schema in it, so tests never see each other's rows or migrations. The binaries
come from a system installation when there is one, else from the `pgserver` wheel in
the test extras (Linux x86_64 and macOS, Python 3.11/3.12).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import pytest

from bridge.testing.postgres import fresh_schema_url

STRICT_VARIABLE = "BRIDGE_TEST_STRICT"
# Reasons given for missing programs this session, for the closing notice.
_MISSING_REASONS: set[str] = set()


def strict() -> bool:
    """Whether a missing system program fails the tests instead of skipping them."""
    return os.environ.get(STRICT_VARIABLE, "").strip() == "1"


def missing_program(reason: str) -> NoReturn:
    """Skip the calling test for `reason`, or fail it when the run is strict."""
    if strict():
        pytest.fail(f"{reason} ({STRICT_VARIABLE}=1 makes this a failure)", pytrace=False)
    _MISSING_REASONS.add(reason)
    pytest.skip(reason)


def find_program(
    name: str, *, needed_for: str, install: str, search: Sequence[str | Path] = ()
) -> Path:
    """The path of system program `name`, looked up in `search` first, then on PATH.

    Args:
        name: the executable, e.g. "chromium".
        needed_for: who needs it, e.g. "the browser tests" (starts the skip reason).
        install: how to get it, e.g. "apt-get install chromium".
        search: directories tried before PATH.
    """
    path = os.pathsep.join([*map(str, search), os.environ.get("PATH", "")])
    found = shutil.which(name, path=path)
    if found is None:
        missing_program(f"{needed_for} need {name}, which is not installed: {install}")
    return Path(found)


@pytest.fixture(scope="session")
def require_program() -> Callable[..., Path]:
    """`require_program("chromium", needed_for=..., install=...)`: see `find_program`."""
    return find_program


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say loudly which tests were skipped for a missing program (pytest alone only counts)."""
    for reason in sorted(_MISSING_REASONS):
        count = sum(
            1
            for report in terminalreporter.stats.get("skipped", [])
            if isinstance(report.longrepr, tuple) and report.longrepr[2].endswith(reason)
        )
        if not count:  # a reason raised and caught inside a test (the helper's own tests)
            continue
        terminalreporter.write_line(
            f"NOTICE: {count} tests skipped: {reason} (set {STRICT_VARIABLE}=1 to fail instead)",
            yellow=True,
            bold=True,
        )


# Debian/Ubuntu install the server binaries here, not on PATH.
POSTGRES_BIN_DIRS = "/usr/lib/postgresql/*/bin"
POSTGRES_INSTALL = (
    "pip install -e '.[test]' brings it (the pgserver wheel) on Linux x86_64 and macOS with "
    "Python 3.11/3.12; elsewhere install PostgreSQL (apt-get install postgresql)"
)
# initdb and postgres refuse to run as root: as root the cluster belongs to this user
# (the Debian package's), or to `nobody`, which every system has.
POSTGRES_OS_USERS = ("postgres", "nobody")


def _pgserver_bin_dir() -> list[Path]:
    """The bin directory of the pgserver wheel, if installed (found without importing it:
    its import warns about XDG_RUNTIME_DIR and we need only its files)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"]


def _postgres_bin_dir() -> Path:
    """The directory holding initdb and pg_ctl of one installation: a system one first
    (as root the cluster runs as another user, who can always run those), else the
    pgserver wheel's (inside the virtualenv, which that user must be able to enter)."""
    system = [*sorted(glob.glob(POSTGRES_BIN_DIRS), reverse=True), os.environ.get("PATH", "")]
    found = shutil.which("initdb", path=os.pathsep.join(system))
    initdb = (
        Path(found)
        if found
        else find_program(
            "initdb",
            needed_for="the Postgres tests",
            install=POSTGRES_INSTALL,
            search=_pgserver_bin_dir(),
        )
    )
    if not (initdb.parent / "pg_ctl").exists():
        missing_program(f"the Postgres tests need pg_ctl beside {initdb}: {POSTGRES_INSTALL}")
    return initdb.parent


def _cluster_owner() -> pwd.struct_passwd | None:
    """Whom the cluster runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in POSTGRES_OS_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.fail(f"running as root, the Postgres tests need one of the users {POSTGRES_OS_USERS}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(command: list[str], owner: pwd.struct_passwd | None) -> None:
    """Run one server command, as `owner` when given (no runuser/sudo needed)."""
    as_owner = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []} if owner else {}
    result = subprocess.run(command, capture_output=True, text=True, check=False, **as_owner)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a running throwaway server (user `bridge`, trust auth, no fsync)."""
    bin_dir = _postgres_bin_dir()
    base = Path(tempfile.mkdtemp(prefix="bridge-pg-"))
    owner = _cluster_owner()
    if owner is not None:
        os.chown(base, owner.pw_uid, owner.pw_gid)
    data, port = base / "data", _free_port()
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data)]
    try:
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "bridge", "-A", "trust"]
        _run([*initdb, "-E", "UTF8", "--no-sync", "--no-instructions"], owner)
        options = f"-F -p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={base}"
        _run([*pg_ctl, "-l", str(base / "server.log"), "-o", options, "-w", "start"], owner)
        yield f"postgresql://bridge@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            _run([*pg_ctl, "-m", "immediate", "-w", "stop"], owner)
        shutil.rmtree(base, ignore_errors=True)


async def fresh_postgres_url(server_url: str) -> str:
    """A URL whose connections work in a new, empty schema of `server_url`."""
    return await fresh_schema_url(server_url)


@pytest.fixture
async def postgres_url(postgres_server: str) -> str:
    """DATABASE_URL of an empty Postgres database of this test's own."""
    return await fresh_postgres_url(postgres_server)


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """DATABASE_URL of an empty database of this test's own, once per kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'bridge.db'}"
    return await fresh_postgres_url(request.getfixturevalue("postgres_server"))
