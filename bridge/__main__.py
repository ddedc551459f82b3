"""Allows `python -m bridge`, the same as the `bridge` console script."""

from bridge.cli import main

raise SystemExit(main())
