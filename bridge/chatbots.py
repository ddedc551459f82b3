"""Which chatbot answers a thread, at run time: the routes file applied to live clients.

The relay asks `Chatbots.resolve` once per question: the answer is a backend, with the
route's context text folded into every request (admission reads the route's allowed
users, the adapters its answer mode through the relay). A thread
whose conversation started on another chatbot stays with that chatbot, as long as
this process still knows it: changing the routes never moves a running conversation.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import aiohttp
from pydantic import SecretStr

from bridge.backends.base import ChatBackend
from bridge.backends.events import AnswerEvent
from bridge.backends.http import BackendLimits
from bridge.backends.widget import WidgetClient
from bridge.backends.wonderchat import WonderchatClient
from bridge.config import Settings
from bridge.context import ContextMessage
from bridge.model import ThreadKey
from bridge.routes import BackendTarget, Mode, Route, RouteTable, load_routes

log = logging.getLogger(__name__)


def join_context(*parts: str | None) -> str | None:
    """Context texts in order, blank ones dropped; None when nothing is left."""
    joined = "\n\n".join(part for part in parts if part)
    return joined or None


class RoutedBackend:
    """A backend client under the name the store records, adding a route's context.

    The route's context comes first, then any context the caller passes, in the
    backend's one `context` field; the thread's earlier messages (`history`) go as the
    client sends them.
    """

    def __init__(self, name: str, client: ChatBackend, context: str | None) -> None:
        self.name = name
        self._client = client
        self._context = context

    def stream_answer(
        self,
        question: str,
        conversation_id: str | None = None,
        *,
        context: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        history: Sequence[ContextMessage] = (),
    ) -> AsyncIterator[AnswerEvent]:
        return self._client.stream_answer(
            question,
            conversation_id,
            context=join_context(self._context, context),
            metadata=metadata,
            history=history,
        )


class Chatbots:
    """The environment's backend plus one client per chatbot named in the routes."""

    def __init__(
        self,
        default: ChatBackend,
        table: RouteTable | None = None,
        build: Callable[[BackendTarget], ChatBackend] | None = None,
    ) -> None:
        """`build` makes the client of a routed chatbot (one per chatbot, on first use)."""
        self._default = default
        self._table = table or RouteTable()
        self._build = build
        self._clients: dict[str, ChatBackend] = {default.name: default}

    @classmethod
    def single(cls, backend: ChatBackend) -> Chatbots:
        """No routes: every question goes to `backend` (today's behaviour)."""
        return cls(backend)

    @classmethod
    def from_settings(
        cls, settings: Settings, session: aiohttp.ClientSession, default: ChatBackend
    ) -> Chatbots:
        """Load BRIDGE_ROUTES_FILE (if set) and build a client for each chatbot in it.

        Raises:
            RoutesError: the file is unreadable or invalid (file and line named).
        """
        if not settings.bridge_routes_file:
            return cls.single(default)
        table = load_routes(settings.bridge_routes_file)
        limits = BackendLimits.from_settings(settings)
        log.info(
            "routes: %d rules, %d chatbots from %s",
            len(table.routes),
            len(table.targets()),
            table.source,
        )
        return cls(default, table, lambda target: build_client(target, settings, session, limits))

    @property
    def table(self) -> RouteTable:
        return self._table

    def route_for(self, thread: ThreadKey) -> Route | None:
        return self._table.match(thread.platform, thread.workspace, thread.channel)

    def mode_for(self, platform: str, workspace: str, channel: str) -> Mode:
        """`all` where a route turns on answering without a mention."""
        route = self._table.match(platform, workspace, channel)
        return route.mode if route else "mention"

    def resolve(self, thread: ThreadKey, started_on: str | None = None) -> ChatBackend:
        """The backend for a question in `thread`, with the route's context folded in;
        `started_on` is the backend name the thread's conversation was recorded with,
        which wins while this process knows it."""
        route = self.route_for(thread)
        client = self._client(route.target) if route and route.target else self._default
        if started_on is not None and started_on != client.name:
            client = self._started_on(started_on) or client
        context = route.context if route else None
        return client if context is None else RoutedBackend(client.name, client, context)

    def _client(self, target: BackendTarget) -> ChatBackend:
        client = self._clients.get(target.key)
        if client is None:
            assert self._build is not None  # a table with targets comes with a builder
            client = self._clients[target.key] = self._build(target)
        return client

    def _started_on(self, name: str) -> ChatBackend | None:
        """The chatbot a conversation began on, if it can still be reached: a routed one
        even after the routes dropped it (its Widget key variable must still be set)."""
        if name in self._clients:
            return self._clients[name]
        target = BackendTarget.from_key(name)
        if target is None or self._build is None:
            return None
        if target.api_key_env is not None and not os.environ.get(target.api_key_env):
            log.warning("conversation on %s moves on: $%s is not set", name, target.api_key_env)
            return None
        return self._client(target)


def build_client(
    target: BackendTarget,
    settings: Settings,
    session: aiohttp.ClientSession,
    limits: BackendLimits,
) -> ChatBackend:
    """One client for a routed chatbot, named by `target.key`; keys come from the
    environment variable the route names (checked when the file was read)."""
    client: ChatBackend
    if target.kind == "wonderchat":
        assert target.chatbot_id is not None
        client = WonderchatClient(
            session,
            api_url=target.api_url or settings.wonderchat_api_url,
            chatbot_id=target.chatbot_id,
            limits=limits,
        )
    else:
        assert target.api_url is not None and target.api_key_env is not None
        client = WidgetClient(
            session,
            api_url=target.api_url,
            api_key=SecretStr(os.environ.get(target.api_key_env, "")),
            model=target.model or "default",
            limits=limits,
        )
    return RoutedBackend(target.key, client, None)
