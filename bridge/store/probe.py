"""Look at an SQLite database without changing anything, for `bridge check`.

Opening the store creates a missing file and migrates its schema; a check must do
neither (it may run in any directory, before a deploy). This reads the schema version
with the file opened read-only, or says the file does not exist yet.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from bridge.errors import StoreError
from bridge.store.base import MEMORY, parse_database_url
from bridge.store.sqlite import MIGRATIONS


@dataclass(frozen=True)
class SQLiteState:
    """What a read-only look at the file found."""

    path: Path
    exists: bool
    version: int  # 0 when the file does not exist or has no schema yet
    known: int = len(MIGRATIONS)  # the version this bridge migrates to


def _read_version(path: Path) -> int:
    # With no -wal file beside it (no process has it open) `immutable` reads without
    # creating -wal/-shm files; with one, a read-only open sees its pages too.
    wal = path.with_name(path.name + "-wal")
    mode = "mode=ro" if wal.exists() else "immutable=1"
    uri = f"file:{quote(str(path.resolve()))}?{mode}"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as conn:
            table = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            ).fetchone()
            if table is None:
                return 0
            (version,) = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
            ).fetchone()
            return int(version)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the SQLite file {path}: {exc}") from exc


async def probe_sqlite(database_url: str) -> SQLiteState | None:
    """The state of the SQLite file `database_url` names; None for `:memory:`.

    Raises:
        ConfigError: the URL is not an sqlite URL.
        StoreError: the file exists but cannot be read, or its directory is missing or
            not writable (the bridge could not create the file).
    """
    path = parse_database_url(database_url)
    if path == MEMORY:
        return None
    return await asyncio.to_thread(_probe, Path(path))


def _probe(file: Path) -> SQLiteState:
    if file.exists():
        return SQLiteState(file, exists=True, version=_read_version(file))
    directory = file.parent.resolve()
    if not directory.is_dir():
        raise StoreError(f"the directory of the SQLite file does not exist: {directory}")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StoreError(f"the bridge cannot create files in {directory}")
    return SQLiteState(file, exists=False, version=0)
