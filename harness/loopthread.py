"""An asyncio event loop on a thread of its own: the loopback servers the tests drive
from synchronous code (the fault proxy, the HTTP proxy, the TLS relay) run on one."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class LoopThread:
    """A loop run on a daemon thread; :meth:`call` runs a coroutine on it and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def call(self, work: Coroutine[Any, Any, Any]) -> Any:
        """Run ``work`` on the loop; its result, within 10 s."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=10)

    def serve(self, handler: Handler, **options: Any) -> tuple[asyncio.Server, int]:
        """Start the loop and listen on a free loopback port with ``handler``
        (``options`` go to :func:`asyncio.start_server`); the server and its port."""
        self._thread.start()

        async def listen() -> asyncio.Server:
            return await asyncio.start_server(handler, "127.0.0.1", 0, **options)

        server: asyncio.Server = self.call(listen())
        return server, server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        """Stop the loop and wait for its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
