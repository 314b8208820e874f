import json
from http.server import BaseHTTPRequestHandler

import pytest

from helpers import local_http_server

from wfctl.errors import LLMError
from wfctl.llm import OfflineProvider, OpenAIProvider, provider_from_env, run_llm, sample_from_schema
from wfctl.llm.step import build_messages

API_KEY = "sk-test-0123456789abcdef"

STATUS_SCHEMA = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["active", "churned", "potential"]},
        "churnReason": {"type": ["string", "null"]},
        "churnedAt": {"type": ["number", "null"]},
    },
    "required": ["status", "churnReason", "churnedAt"],
    "additionalProperties": False,
}


class ChatHandler(BaseHTTPRequestHandler):
    """A tiny chat-completions server. The last user message chooses the behaviour."""

    requests: list = []  # every request received, newest last

    def log_message(self, *args):
        pass

    def _send(self, status, body, content_type="application/json"):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if self.path != "/v1/chat/completions":
            return self._send(404, {"error": {"message": "not found"}})
        prompt = body["messages"][-1]["content"]
        if prompt == "fail":
            return self._send(500, {"error": {"message": f"internal failure for key {API_KEY}"}})
        if prompt == "garbage":
            return self._send(200, "<html>not json</html>", "text/html")
        if prompt == "no-choices":
            return self._send(200, {"choices": []})
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            return self._send(401, {"error": {"message": "Incorrect API key provided"}})
        if body.get("response_format") == {"type": "json_object"}:
            content = "```json\n" + json.dumps({"status": "active", "churnReason": None, "churnedAt": None}) + "\n```"
        else:
            content = f"echo: {prompt} ({body['model']})"
        self._send(200, {"id": "c1", "object": "chat.completion",
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                      "finish_reason": "stop"}]})


@pytest.fixture(scope="module")
def chat_server():
    with local_http_server(ChatHandler) as url:
        yield f"{url}/v1"


def test_openai_text_answer_and_auth_header(chat_server):
    provider = OpenAIProvider(chat_server, API_KEY, "test-model")
    out = run_llm({"name": "n", "systemPrompt": "Be brief.", "userPrompt": "hello"}, provider)
    assert out == "echo: hello (test-model)"
    request = ChatHandler.requests[-1]
    assert request["auth"] == f"Bearer {API_KEY}"
    assert request["body"]["model"] == "test-model"
    assert request["body"]["messages"] == [{"role": "system", "content": "Be brief."},
                                           {"role": "user", "content": "hello"}]
    assert "response_format" not in request["body"]


def test_openai_uses_step_model_when_provider_has_none(chat_server):
    provider = OpenAIProvider(chat_server + "/", API_KEY, None)
    assert run_llm({"userPrompt": "hi", "model": "step-model"}, provider) == "echo: hi (step-model)"
    with pytest.raises(LLMError, match="no LLM model"):
        run_llm({"userPrompt": "hi"}, provider)


def test_openai_json_answer_is_parsed_and_validated(chat_server):
    provider = OpenAIProvider(chat_server, API_KEY, "m")
    config = {"llmNode": {"systemPrompt": "Extract.", "userPrompt": "data", "outputFormat": "json",
                          "outputSchema": STATUS_SCHEMA}}
    assert run_llm(config, provider) == {"status": "active", "churnReason": None, "churnedAt": None}
    body = ChatHandler.requests[-1]["body"]
    assert body["response_format"] == {"type": "json_object"}
    assert "JSON" in body["messages"][0]["content"] and '"churnReason"' in body["messages"][0]["content"]


def test_openai_http_500_is_one_line_without_the_key(chat_server):
    provider = OpenAIProvider(chat_server, API_KEY, "m")
    with pytest.raises(LLMError) as err:
        run_llm({"userPrompt": "fail"}, provider)
    message = str(err.value)
    assert "HTTP 500" in message and "internal failure" in message
    assert API_KEY not in message and "\n" not in message


def test_openai_unauthorized(chat_server):
    with pytest.raises(LLMError, match="HTTP 401: Incorrect API key provided"):
        run_llm({"userPrompt": "x"}, OpenAIProvider(chat_server, "sk-wrong-key", "m"))


@pytest.mark.parametrize("prompt", ["garbage", "no-choices"])
def test_openai_malformed_response(chat_server, prompt):
    with pytest.raises(LLMError, match="malformed"):
        run_llm({"userPrompt": prompt}, OpenAIProvider(chat_server, API_KEY, "m"))


def test_openai_connection_error():
    provider = OpenAIProvider("http://127.0.0.1:9/v1", API_KEY, "m", timeout=2)
    with pytest.raises(LLMError) as err:
        run_llm({"userPrompt": "x"}, provider)
    assert "127.0.0.1:9" in str(err.value) and API_KEY not in str(err.value)


def test_offline_provider_is_deterministic():
    provider = OfflineProvider()
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "Summarize   this\nplease " * 10}]
    first = provider.complete(messages)
    assert first == provider.complete(messages)
    assert first.startswith("offline answer ") and first.split(": ", 1)[1] == ("Summarize this please " * 3)[:60]
    other = provider.complete([{"role": "user", "content": "different"}])
    assert other.split(":")[0] != first.split(":")[0]


def test_offline_provider_json_modes():
    provider = OfflineProvider()
    out = run_llm({"userPrompt": "x", "outputFormat": "json", "outputSchema": STATUS_SCHEMA}, provider)
    assert out == {"status": "active", "churnReason": out["churnReason"], "churnedAt": out["churnedAt"]}
    plain = run_llm({"userPrompt": "x", "outputFormat": "json"}, provider)
    assert set(plain) == {"answer"} and plain["answer"].startswith("offline answer")


def test_offline_provider_latency():
    slept = []
    OfflineProvider(latency_ms=250, sleep=slept.append).complete([{"role": "user", "content": "x"}])
    assert slept == [0.25]


def test_sample_from_schema_is_valid_for_tale_schemas():
    import jsonschema

    schema = {
        "type": "object",
        "properties": {
            "relationships": {"type": "array", "minItems": 2, "items": {
                "type": "object",
                "properties": {
                    "source_product_id": {"type": "string", "minLength": 20},
                    "relationship_type": {"type": "string", "enum": ["Complementary", "Bundle"]},
                    "confidence": {"type": "number", "minimum": 0.5, "maximum": 1},
                    "rank": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 5},
                    "tiny": {"type": "integer", "minimum": 0.2, "maximum": 1.5},
                    "flag": {"type": "boolean"},
                    "when": {"type": "string", "format": "date-time"},
                    "code": {"type": "string", "maxLength": 3},
                    "kind": {"const": "x"},
                    "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                },
                "required": ["source_product_id", "relationship_type", "confidence"],
            }},
            "note": {"type": "null"},
        },
    }
    value = sample_from_schema(schema, "abc")
    jsonschema.validate(value, schema)
    assert len(value["relationships"]) == 2
    assert value["relationships"][0]["relationship_type"] == "Complementary"
    assert value["relationships"][0]["rank"] == 1 and value["relationships"][0]["tiny"] == 1
    jsonschema.validate(sample_from_schema(STATUS_SCHEMA), STATUS_SCHEMA)


class FixedProvider:
    def __init__(self, answer):
        self.answer = answer
        self.calls = []

    def complete(self, messages, *, model=None, json_mode=False, timeout=None, schema=None):
        self.calls.append({"messages": messages, "model": model, "json_mode": json_mode, "schema": schema})
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_run_llm_json_fences_and_errors():
    config = {"userPrompt": "x", "outputFormat": "json"}
    assert run_llm(config, FixedProvider('```json\n{"a": [1, 2]}\n```')) == {"a": [1, 2]}
    assert run_llm(config, FixedProvider('  ```\n[1]\n```  ')) == [1]
    with pytest.raises(LLMError) as err:
        run_llm(config, FixedProvider("Sure! Here is the JSON:\n{oops}"))
    assert "not valid JSON" in str(err.value) and "\n" not in str(err.value)


def test_run_llm_schema_mismatch():
    bad = json.dumps({"status": "unknown", "churnReason": None, "churnedAt": None})
    config = {"userPrompt": "x", "outputFormat": "json", "outputSchema": STATUS_SCHEMA}
    with pytest.raises(LLMError, match=r"does not match outputSchema at \$\.status: 'unknown' is not one of"):
        run_llm(config, FixedProvider(bad))
    with pytest.raises(LLMError, match="not a valid JSON schema"):
        run_llm({**config, "outputSchema": {"type": "banana"}}, FixedProvider("{}"))


def test_run_llm_messages_context_and_tools():
    provider = FixedProvider("ok")
    config = {"name": "a", "systemPrompt": "Sys", "userPrompt": {"q": 1}, "tools": ["rag_search"],
              "contextVariables": {"customer": {"id": 7}}, "model": "gpt-x"}
    assert run_llm(config, provider) == "ok"
    call = provider.calls[0]
    assert call["model"] == "gpt-x" and call["json_mode"] is False and call["schema"] is None
    system, user = call["messages"]
    assert system["content"].startswith("Sys\n\nContext variables (JSON):") and '"id": 7' in system["content"]
    assert user == {"role": "user", "content": '{"q": 1}'}
    assert build_messages({"userPrompt": "only"}) == [{"role": "user", "content": "only"}]


def test_run_llm_config_errors():
    with pytest.raises(LLMError, match="outputFormat"):
        run_llm({"userPrompt": "x", "outputFormat": "xml"}, FixedProvider("x"))
    with pytest.raises(LLMError, match="systemPrompt or a userPrompt"):
        run_llm({"name": "empty"}, FixedProvider("x"))
    with pytest.raises(LLMError, match="LLM provider failed: RuntimeError: boom"):
        run_llm({"userPrompt": "x"}, FixedProvider(RuntimeError("boom")))
    with pytest.raises(LLMError, match="returned dict"):
        run_llm({"userPrompt": "x"}, FixedProvider({"a": 1}))


def test_provider_from_env():
    assert isinstance(provider_from_env({}), OfflineProvider)
    assert provider_from_env({"WFCTL_LLM_OFFLINE_LATENCY_MS": "15"}).latency_ms == 15
    with pytest.raises(LLMError):
        provider_from_env({"WFCTL_LLM_OFFLINE_LATENCY_MS": "soon"})
    only_key = provider_from_env({"OPENAI_API_KEY": "sk-secret-value"})
    assert isinstance(only_key, OpenAIProvider)
    assert only_key.base_url == "https://api.openai.com/v1" and only_key.model == "gpt-4o-mini"
    local = provider_from_env({"WFCTL_LLM_BASE_URL": "http://127.0.0.1:1234/v1/", "OPENAI_MODEL": "llama",
                               "OPENAI_BASE_URL": "http://ignored"})
    assert local.base_url == "http://127.0.0.1:1234/v1" and local.model == "llama"
    assert "sk-secret-value" not in repr(only_key)
