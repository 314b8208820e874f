"""Builders shared by the tests: definitions from step dicts, a hand-driven clock."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TALE_EXAMPLES = ROOT.parent / "shared" / "tale-examples"


class FakeClock:
    """A clock tests move by hand; ``sleep`` advances it instead of waiting."""

    def __init__(self, start: float = 1_790_000_000.0):
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def definition(steps, **top):
    """A definition from a list of step dicts (tale format); ``top`` adds top-level fields."""
    from wfctl.definitions import parse_definition

    data = {"name": top.pop("name", "test"), "steps": steps, **top}
    return parse_definition(data, source="test.json", default_id=top.get("id", "test"))


def step(slug, step_type, config=None, next_steps=None, **extra):
    """One tale step dict."""
    return {"stepSlug": slug, "name": slug, "stepType": step_type, "config": config or {},
            "nextSteps": next_steps or {}, **extra}


@contextmanager
def local_http_server(handler, server_cls=ThreadingHTTPServer):
    """Serve ``handler`` on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    server = server_cls(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
