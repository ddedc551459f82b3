"""A throwaway PostgreSQL server for the store and relay tests.

One cluster per test session (initdb + pg_ctl in a temporary directory, on a free port
on 127.0.0.1, started only when a test asks for it); each test gets a fresh schema in
it, so tests never see each other's rows or migrations.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

# Debian/Ubuntu install the server binaries here, not on PATH.
POSTGRES_BIN_DIRS = "/usr/lib/postgresql/*/bin"
# initdb and postgres refuse to run as root; the Debian package creates this user.
POSTGRES_OS_USER = "postgres"


def _postgres_bin_dir() -> Path:
    """The directory holding initdb and pg_ctl of one installation (newest first)."""
    search = [*sorted(glob.glob(POSTGRES_BIN_DIRS), reverse=True), os.environ.get("PATH", "")]
    initdb = shutil.which("initdb", path=os.pathsep.join(search))
    if initdb is None or not (Path(initdb).parent / "pg_ctl").exists():
        pytest.fail(
            "the Postgres tests need the PostgreSQL server binaries (initdb, pg_ctl), "
            f"found neither on PATH nor in {POSTGRES_BIN_DIRS}: "
            "install them, e.g. apt-get install postgresql"
        )
    return Path(initdb).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a running throwaway server (user `bridge`, trust auth, no fsync)."""
    bin_dir = _postgres_bin_dir()
    base = Path(tempfile.mkdtemp(prefix="bridge-pg-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, POSTGRES_OS_USER)
        as_owner = ["runuser", "-u", POSTGRES_OS_USER, "--"]
    data, port = base / "data", _free_port()
    pg_ctl = [*as_owner, str(bin_dir / "pg_ctl"), "-D", str(data)]
    try:
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "bridge", "-A", "trust"]
        _run([*as_owner, *initdb, "-E", "UTF8", "--no-sync", "--no-instructions"])
        options = f"-F -p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={base}"
        _run([*pg_ctl, "-l", str(base / "server.log"), "-o", options, "-w", "start"])
        yield f"postgresql://bridge@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            _run([*pg_ctl, "-m", "immediate", "-w", "stop"])
        shutil.rmtree(base, ignore_errors=True)


async def fresh_postgres_url(server_url: str) -> str:
    """A URL whose connections work in a new, empty schema (asyncpg passes unknown URL
    parameters such as `search_path` to the server as settings)."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    return f"{server_url}?search_path={schema}"


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
