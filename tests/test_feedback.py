"""The feedback settings, and the metrics every dashboard can rely on from start-up."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from bridge.config import load_settings
from bridge.errors import ConfigError
from bridge.runtime import open_runtime

OPERATIONS_DOC = Path(__file__).parent.parent / "docs" / "operations.md"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "bridge_handoff_slack",
            "U0SOMEONE",
            "BRIDGE_HANDOFF_SLACK: must be a Slack user-group id",
        ),
        ("bridge_handoff_slack", "@support", "Copy group ID"),
        (
            "bridge_handoff_discord",
            "Support",
            "BRIDGE_HANDOFF_DISCORD: must be a Discord role id",
        ),
        ("bridge_feedback_webhook_url", "ftp://x.example/hook?token=s3cret", "must be an http://"),
    ],
)
def test_bad_feedback_settings_are_one_clear_line(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**{variable: value})
    assert expected in str(caught.value)
    assert "s3cret" not in str(caught.value)  # a webhook URL may carry a token


def test_good_feedback_settings() -> None:
    settings = load_settings(
        bridge_handoff_slack=" S0HELPERS ",
        bridge_handoff_discord="123456789012345678",
        bridge_feedback_webhook_url="https://hooks.example.com/bridge?token=s3cret",
    )
    assert settings.bridge_handoff_slack == "S0HELPERS"
    assert settings.bridge_handoff_discord == "123456789012345678"
    assert "https://hooks.example.com/bridge?token=s3cret" in settings.secret_values()


async def test_every_documented_metric_is_visible_from_start_up(tmp_path: Path) -> None:
    settings = load_settings(
        wonderchat_chatbot_id="bot",
        wonderchat_api_url="http://127.0.0.1:9",
        database_url=f"sqlite:///{tmp_path / 'bridge.db'}",
    )
    async with open_runtime(settings):
        exposed = generate_latest().decode()
    documented = set(re.findall(r"^\| `(bridge_[a-z_]+)`", OPERATIONS_DOC.read_text(), re.M))
    assert {"bridge_feedback_total", "bridge_handoffs_total"} <= documented
    for name in documented - {"bridge_platform_api_calls_total"}:  # labelled by API method
        assert re.search(rf"^{name}(_bucket|_count)?\{{", exposed, re.M) or re.search(
            rf"^{name} ", exposed, re.M
        ), name
    for series in (
        'bridge_feedback_total{platform="discord",vote="down"}',
        'bridge_handoffs_total{platform="slack"}',
        'bridge_answers_total{outcome="refused",platform="slack"}',
        'bridge_questions_total{platform="discord"}',
    ):
        assert _labels_any_order(series, exposed), series


def _labels_any_order(series: str, exposed: str) -> bool:
    name, _, labels = series.partition("{")
    wanted = set(labels.rstrip("}").split(","))
    for line in exposed.splitlines():
        labels_of_line = line[len(name) + 1 : line.find("}")].split(",")
        if line.startswith(name + "{") and set(labels_of_line) == wanted:
            return True
    return False
