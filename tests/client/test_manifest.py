"""Provider manifests: every shipped one loads; a bad one fails naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiscope.client._paths import JsonPath
from aiscope.client.manifest import ManifestError, ManifestRegistry, registry

SHIPPED = [
    "anthropic",
    "deepseek",
    "gemini",
    "groq",
    "mistral",
    "ollama",
    "openai",
    "openrouter",
    "together",
    "vllm",
]


def test_every_shipped_manifest_loads() -> None:
    reg = registry()
    assert set(SHIPPED) <= set(reg.ids())
    for pid in SHIPPED:
        m = reg.get(pid)
        assert m.base_url.startswith("http")
        assert m.events, pid
        assert "text" in m.response and "finish_reason" in m.response


def test_openai_compatible_inherit_and_override() -> None:
    reg = registry()
    ds = reg.get("deepseek")
    assert ds.base_url == "https://api.deepseek.com"
    assert ds.fields["max_tokens"] == "max_tokens"
    assert ds.auth.env == ("DEEPSEEK_API_KEY",)
    assert ds.stream_extra == {"stream_options": {"include_usage": True}}
    assert reg.get("mistral").stream_extra == {}  # cleared by an empty mapping
    assert reg.get("ollama").auth.required is False
    assert reg.get("openai").fields["max_tokens"] == "max_completion_tokens"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "acme.yaml"
    p.write_text(text)
    return p


GOOD = """
id: acme
extends: openai
base_url: https://llm.acme.test/v1
auth: {env: ACME_KEY}
"""


def test_user_manifest_from_file(tmp_path: Path) -> None:
    reg = ManifestRegistry()
    m = reg.add_file(_write(tmp_path, GOOD))
    assert m.id == "acme" and m.base_url == "https://llm.acme.test/v1" and m.format == "openai"
    assert reg.get("acme") is m


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (
            GOOD.replace("base_url: https://llm.acme.test/v1", "base_url: ftp://x"),
            "base_url",
            "http",
        ),
        (GOOD + "colour: blue\n", "colour", "unknown key"),
        (GOOD.replace("extends: openai", "extends: nothere"), "extends", "unknown base provider"),
        (GOOD + "request: {format: soap}\n", "request.format", "must be one of"),
        (GOOD + "response: {text: 'choices[0]'}\n", "response.text", "starting with '$'"),
        (GOOD + "response: {text: '$.choices[?(@.x'}\n", "response.text", "invalid JSONPath"),
        (
            GOOD + "streaming: {events: [{emit: explode}]}\n",
            "streaming.events[0].emit",
            "must be one of",
        ),
        (
            GOOD + "streaming: {events: [{emit: text_delta}]}\n",
            "streaming.events[0].select",
            "is required",
        ),
        (
            GOOD + "errors: {by_status: {429: slow_down}}\n",
            "errors.by_status.429",
            "must be one of",
        ),
        (
            GOOD + "request: {fields: {temprature: temperature}}\n",
            "request.fields.temprature",
            "unknown field",
        ),
        ("id: acme\nbase_url: https://x\nauth: {header: k}\n", "request.format", "is required"),
        ("[1, 2]\n", "(file)", "mapping"),
        ("id: acme\n  bad: : yaml\n", "(file)", "not valid YAML"),
    ],
)
def test_bad_manifest_names_file_and_key(tmp_path: Path, text: str, key: str, problem: str) -> None:
    reg = ManifestRegistry()
    path = _write(tmp_path, text)
    with pytest.raises(ManifestError) as info:
        reg.add_file(path)
    err = info.value
    assert err.source == str(path)
    assert err.key == key
    assert problem in err.problem
    assert "acme" not in reg.ids() or key == "(file)"


def test_jsonpath_fast_path_agrees_with_python_jsonpath() -> None:
    data = {"choices": [{"delta": {"content": "hi", "n": None}}], "a-b": {"c": 1}}
    for expr, want in [
        ("$.choices[0].delta.content", "hi"),
        ("$.choices[1].delta.content", None),
        ("$.choices[0].delta.n", None),
        ("$['a-b'].c", 1),
        ("$.missing.deeper", None),
    ]:
        p = JsonPath(expr)
        assert p.is_simple
        assert p.first(data) == want
    filt = JsonPath("$.content[?@.type == 'text'].text")
    assert not filt.is_simple
    assert filt.all(
        {"content": [{"type": "text", "text": "a"}, {"type": "x"}, {"type": "text", "text": "b"}]}
    ) == ["a", "b"]
