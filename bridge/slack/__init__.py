"""Slack: slack-bolt adapter (Socket Mode and HTTP Events API), reply surfaces, budgets."""

from bridge.slack.adapter import SlackAdapter

__all__ = ["SlackAdapter"]
