"""Discord: a discord.py client answering DMs, mentions (in threads) and /ask."""

from bridge.discord.adapter import DiscordAdapter

__all__ = ["DiscordAdapter"]
