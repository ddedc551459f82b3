"""The OAuth2 link that adds the bot to a server with exactly the permissions it uses."""

from __future__ import annotations

from urllib.parse import urlencode

import discord

from bridge.errors import ConfigError

AUTHORIZE_URL = "https://discord.com/oauth2/authorize"
SCOPES = ("bot", "applications.commands")

# What the bot does, and the permission each step needs. Embed Links is deliberately
# absent: answers suppress link previews (`<url>` links and the SUPPRESS_EMBEDS flag),
# so the bot never posts embeds.
REQUIRED_PERMISSIONS = discord.Permissions(
    view_channel=True,  # see the channels it is mentioned in
    send_messages=True,  # answer in channels (and the fallback plain reply)
    send_messages_in_threads=True,  # answer inside the threads it creates
    create_public_threads=True,  # open a thread for each mentioned question
    read_message_history=True,  # reply to (reference) the question's message
    use_application_commands=True,  # /ask and /reset
)


def invite_url(application_id: str | int) -> str:
    """The link a server admin opens to add the bot.

    Raises:
        ConfigError: when `application_id` is not a Discord snowflake (digits only), so
            `bridge discord-invite` prints one readable line instead of a traceback.
    """
    text = str(application_id).strip()
    if not text.isdigit():
        raise ConfigError(
            f"the application id is the number under General Information in the "
            f"Developer Portal (digits only), got {text!r}"
        )
    query = urlencode(
        {
            "client_id": text,
            "scope": " ".join(SCOPES),
            "permissions": str(REQUIRED_PERMISSIONS.value),
        }
    )
    return f"{AUTHORIZE_URL}?{query}"
