"""A fresh schema per test or benchmark run on one throwaway Postgres server."""

from __future__ import annotations

import uuid

import asyncpg


async def fresh_schema_url(server_url: str, *, prefix: str = "test") -> str:
    """A URL whose connections work in a new, empty schema (asyncpg passes unknown URL
    parameters such as `search_path` to the server as settings)."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    separator = "&" if "?" in server_url else "?"
    return f"{server_url}{separator}search_path={schema}"
