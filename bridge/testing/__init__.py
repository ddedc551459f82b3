"""Test doubles: a testing-only part of the package, apart from the mock backend.

`mock_backend` is runtime code too: `bridge demo` and `bridge mock-backend` run it. The
rest — the fake Slack and Discord servers, the fake clock and recording surfaces, the
Postgres helper — exists for the tests and the benchmarks only, and no runtime module
imports it (tests/test_layering.py checks). It ships inside the package so that tests
and benchmarks share one copy; nothing in it is loaded by `bridge run` or `serve`.
"""
