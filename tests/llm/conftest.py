"""Fixtures for the LLM provider tests: the fake LLM service on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest
from fake_llm_server import FakeLLM, Handler


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    """A fake LLM service on 127.0.0.1 for one test; ``fake_llm.url`` is its base URL."""
    fake = FakeLLM()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.fake = fake  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    fake.stopping.set()
    server.shutdown()
    server.server_close()
