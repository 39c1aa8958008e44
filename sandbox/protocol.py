"""A uvicorn HTTP protocol that lets the app drop its connection without any response.

Raising inside an ASGI app makes uvicorn answer 500, which is not what a network failure
looks like. This protocol puts an ``abort`` callable into each request's scope extensions;
calling it aborts the TCP (or TLS) transport, so the client sees a connection error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

ABORT_EXTENSION = "crm_sync.sandbox.abort"


class DroppableHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus a per-request ``abort`` scope extension."""

    def on_message_begin(self) -> None:
        """Start a request scope and attach the abort hook."""
        super().on_message_begin()
        self.scope["extensions"] = {ABORT_EXTENSION: self._abort_transport}

    def shutdown(self) -> None:
        """On server shutdown, abort idle connections instead of closing them gracefully.

        A graceful TLS close waits for the peer's close_notify, which clients that already went
        away never send, so a stop would hang until uvicorn's graceful-shutdown timeout.
        """
        if self.cycle is None or self.cycle.response_complete:
            self.transport.abort()
        else:
            super().shutdown()

    def _abort_transport(self) -> None:
        if self.cycle is not None:
            # Stops uvicorn from writing a 500 when the app returns without a response.
            self.cycle.disconnected = True
        self.transport.abort()


def abort_hook(scope: dict[str, Any]) -> Callable[[], None] | None:
    """The abort callable of this request, or None when served by another protocol."""
    return scope.get("extensions", {}).get(ABORT_EXTENSION)
