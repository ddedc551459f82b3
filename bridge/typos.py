"""Warn about variables that look like settings but are not (`SLACK_STREEMING`).

pydantic-settings ignores unknown variables, so a misspelled one silently leaves its
setting at the default. Every variable with one of the bridge's prefixes, in the
environment or in `.env`, that is not a setting gets one warning line, with the
closest real name when there is one. A warning, not an error: other programs on the
same machine may use these prefixes too.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from bridge.config import Settings

PREFIXES = ("BRIDGE_", "SLACK_", "DISCORD_", "WIDGET_", "WONDERCHAT_")
# Read by someone else, not by the settings: never a typo.
#   BRIDGE_TEST_STRICT: the test suite (tests/conftest.py, .ci/run).
#   SLACK_CLIENT_ID/SECRET: slack-bolt's OAuth switch, which the Slack adapter hides.
NOT_SETTINGS = frozenset({"BRIDGE_TEST_STRICT", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"})
# Above difflib's default of 0.6: names sharing a prefix such as SLACK_ already score
# about 0.6, so the default would suggest SLACK_BOT_TOKEN for SLACK_WEBHOOK_URL.
SIMILARITY_CUTOFF = 0.8
ENV_FILE = Path(".env")


@dataclass(frozen=True)
class UnknownVariable:
    name: str
    where: str  # "the environment" or ".env"
    suggestion: str | None

    def message(self) -> str:
        hint = (
            f"did you mean {self.suggestion}?" if self.suggestion else "see README → Configuration"
        )
        return f"{self.name} (in {self.where}) is not a bridge setting and is ignored: {hint}"


def setting_names() -> frozenset[str]:
    return frozenset(name.upper() for name in Settings.model_fields)


def find_unknown(
    names: Iterable[str], where: str, also_known: frozenset[str] = frozenset()
) -> list[UnknownVariable]:
    """The names in `names` that have a bridge prefix but are not settings (nor in
    `also_known`: the key variables a routes file names)."""
    known = setting_names() | also_known
    unknown = []
    for name in sorted(set(names)):
        upper = name.upper()
        if not upper.startswith(PREFIXES) or upper in known or upper in NOT_SETTINGS:
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=SIMILARITY_CUTOFF)
        unknown.append(UnknownVariable(name, where, close[0] if close else None))
    return unknown


def unknown_variables(
    environ: Mapping[str, str] | None = None,
    env_file: Path = ENV_FILE,
    also_known: frozenset[str] = frozenset(),
) -> list[UnknownVariable]:
    """Unknown variables in the environment and in `env_file` (when it exists)."""
    environ = os.environ if environ is None else environ
    found = find_unknown(environ, "the environment", also_known)
    if env_file.is_file():
        in_file = find_unknown(dotenv_values(env_file), str(env_file), also_known)
        seen = {variable.name for variable in found}
        found += [variable for variable in in_file if variable.name not in seen]
    return found
