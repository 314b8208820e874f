import json
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from helpers import local_http_server

from wfctl.actions import ActionContext, default_registry, http_request
from wfctl.errors import ActionError

CTX = ActionContext(execution_id="e1", definition_id="d1", step_slug="call")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, status, body, content_type="application/json", extra=()):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if url.path == "/echo":
            return self._send(200, {
                "method": self.command,
                "query": parse_qs(url.query),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }, extra=[("X-Multi", "a"), ("X-Multi", "b")])
        if url.path == "/text":
            return self._send(200, "plain words", "text/plain")
        if url.path == "/empty":
            return self._send(204 if self.command != "HEAD" else 200, "", "text/plain")
        if url.path.startswith("/status/"):
            return self._send(int(url.path.rsplit("/", 1)[1]), {"error": "nope\nsecond line"})
        if url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/text")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if url.path == "/slow":
            time.sleep(1.0)
            return self._send(200, "late", "text/plain")
        return self._send(404, "missing", "text/plain")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the client of /slow hangs up on purpose


@pytest.fixture(scope="module")
def base_url():
    with local_http_server(Handler, QuietServer) as url:
        yield url


def test_get_with_query_and_headers(base_url):
    out = http_request({"url": f"{base_url}/echo?x=0", "query": {"page": 2, "tags": ["a", "b"], "on": True},
                        "headers": {"X-Token": "abc", "X-Num": 1.0}}, CTX)
    assert out["status"] == 200
    echoed = out["json"]
    assert echoed["method"] == "GET"
    assert echoed["query"] == {"x": ["0"], "page": ["2"], "tags": ["a", "b"], "on": ["true"]}
    assert echoed["headers"]["x-token"] == "abc" and echoed["headers"]["x-num"] == "1"
    assert out["headers"]["content-type"] == "application/json"
    assert out["headers"]["x-multi"] == "a, b"
    assert json.loads(out["body"]) == echoed


def test_post_json_and_raw_body(base_url):
    out = http_request({"method": "post", "url": f"{base_url}/echo", "json": {"a": [1, None]}}, CTX)
    assert out["json"]["method"] == "POST"
    assert json.loads(out["json"]["body"]) == {"a": [1, None]}
    assert out["json"]["headers"]["content-type"] == "application/json"
    raw = http_request({"method": "PUT", "url": f"{base_url}/echo", "body": "k=v",
                        "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, CTX)
    assert raw["json"]["body"] == "k=v" and raw["json"]["method"] == "PUT"
    as_json = http_request({"method": "PATCH", "url": f"{base_url}/echo", "body": {"b": 2}}, CTX)
    assert json.loads(as_json["json"]["body"]) == {"b": 2}


def test_text_body_has_null_json_and_redirects_are_followed(base_url):
    out = http_request({"url": f"{base_url}/redirect"}, CTX)
    assert out == {"status": 200, "headers": out["headers"], "body": "plain words", "json": None}
    assert http_request({"url": f"{base_url}/empty"}, CTX)["json"] is None


def test_error_status_raises_with_status_and_url(base_url):
    with pytest.raises(ActionError) as err:
        http_request({"url": f"{base_url}/status/404"}, CTX)
    message = str(err.value)
    assert "HTTP 404" in message and f"GET {base_url}/status/404" in message and "\n" not in message
    with pytest.raises(ActionError, match="HTTP 503"):
        http_request({"method": "DELETE", "url": f"{base_url}/status/503"}, CTX)


def test_error_status_without_raise_for_status(base_url):
    out = http_request({"url": f"{base_url}/status/500", "raiseForStatus": False}, CTX)
    assert out["status"] == 500 and out["json"] == {"error": "nope\nsecond line"}


def test_timeout(base_url):
    with pytest.raises(ActionError, match=r"timed out after 0.2s"):
        http_request({"url": f"{base_url}/slow", "timeout": 0.2}, CTX)


def test_connection_refused_is_one_line_with_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x"
    with pytest.raises(ActionError) as err:
        http_request({"url": url}, CTX)
    assert url in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("params, message", [
    ({}, "url is required"),
    ({"url": "http://127.0.0.1:1/", "timeout": 0}, "timeout must be a positive number"),
    ({"url": "http://127.0.0.1:1/", "timeout": "5"}, "timeout must be a positive number"),
    ({"url": "http://127.0.0.1:1/", "json": {}, "body": "x"}, "either json or body"),
    ({"url": "http://127.0.0.1:1/", "headers": ["x"]}, "headers must be an object"),
    ({"url": "http://127.0.0.1:1/", "method": 5}, "method must be a string"),
    ({"url": "ftp://example.invalid/"}, "ftp://example.invalid/"),
    ({"url": "http://"}, "http://"),
])
def test_bad_parameters(params, message):
    with pytest.raises(ActionError, match=message.replace("?", r"\?")):
        http_request(params, CTX)


def test_http_request_through_the_registry_is_not_pure(base_url):
    registry = default_registry(plugins=False)
    spec = registry.get("http_request")
    assert not spec.pure and not registry.is_pure("http_request")
    assert spec.fn({"url": f"{base_url}/text"}, CTX)["body"] == "plain words"
