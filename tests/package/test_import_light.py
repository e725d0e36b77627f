"""``import aiscope`` is light: the CLI, the server, gRPC, the HTTP client stacks,
pydantic, prometheus_client and the pricing tables load only when used, and every
public name still resolves (lazily) to the object its module defines."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import aiscope

HEAVY = (
    "typer", "click", "rich", "pygments", "grpc", "fastapi", "sqlalchemy", "genai_prices",
    "jsonpath", "httpx", "httpx2", "pydantic", "prometheus_client", "opentelemetry.sdk",
    "asyncio",  # about 15 ms: the Redis ledgers and limiter load it when they are used
)  # fmt: skip


def _loaded_after(code: str) -> dict[str, object]:
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps({{'n': len(sys.modules), 'heavy': [m for m in {HEAVY!r} "
        "if m in sys.modules]}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_import_aiscope_loads_no_heavy_dependency() -> None:
    got = _loaded_after("import aiscope")
    assert got["heavy"] == [], got
    # 710 before the package became lazy, 224 while aiscope.instrument loaded its adapters
    assert int(got["n"]) < 120, got


def test_metrics_alone_load_prometheus_client_but_not_the_client_or_the_cli() -> None:
    got = _loaded_after("from aiscope import MetricsCollector, configure\n"
                        "configure(metrics=MetricsCollector())")  # fmt: skip
    assert set(got["heavy"]) <= {"prometheus_client"}, got  # type: ignore[arg-type]


def test_an_app_with_the_openai_sdk_and_every_aiscope_http_client_loads_one_http_stack() -> None:
    # openai 3.x, anthropic 2.x and genai-prices are on httpx2: aiscope's own HTTP
    # clients (AiClient, the server exporter, alert notifiers, health checks) are too
    got = _loaded_after(
        "import openai, aiscope\n"
        "from aiscope import AiClient, ServerExporter, AlertEvaluator, HealthChecker\n"
        "from aiscope.testing import MockProvider\n"
        "import aiscope.alerts.notifiers, aiscope.health, aiscope.server_exporter\n"
        "import aiscope.demo_server\n"
        "aiscope.instrument()\n"
        "mock = MockProvider().start()\n"
        "c = AiClient.builder().model('openai/gpt-4o').api_key('k')"
        ".base_url(mock.base_url('openai')).build()\n"
        "c.chat().user('hi').execute_sync(); c.close()\n"
        "o = openai.OpenAI(base_url=mock.base_url('openai'), api_key='k')\n"
        "o.chat.completions.create(model='gpt-4o', messages=[{'role': 'user', 'content': 'x'}])\n"
        "mock.stop()"
    )
    assert "httpx2" in got["heavy"] and "httpx" not in got["heavy"], got


@pytest.mark.parametrize("name", sorted(set(aiscope.__all__) - {"__version__"}))
def test_every_public_name_resolves_to_its_modules_object(name: str) -> None:
    value = getattr(aiscope, name)
    if name == "instrument":  # the function, though aiscope.instrument is also a package
        assert callable(value) and value.__module__ == "aiscope.instrument"
        return
    module = importlib.import_module(aiscope._LAZY[name])
    assert value is getattr(module, name)
    assert name in dir(aiscope)


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        aiscope.no_such_thing  # noqa: B018


def test_subpackages_are_still_attributes_of_the_package() -> None:
    got = _loaded_after("import aiscope\nassert aiscope.tracing.Tracer is not None\n"
                        "assert aiscope.cost.pricing.Pricing is not None")  # fmt: skip
    assert got["n"]


def test_python_m_aiscope_is_the_aiscope_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "aiscope", "prices", "--json", "gpt-4o"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)
    bad = subprocess.run(
        [sys.executable, "-m", "aiscope", "prices", "gpt4o"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 1 and "gpt-4o" in bad.stderr


_HIDE = """
import importlib.abc, sys
class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == {0!r} or name.startswith({0!r} + "."):
            raise ModuleNotFoundError(name)
        return None
sys.meta_path.insert(0, _Hide())
"""


@pytest.mark.parametrize(
    ("hidden", "code", "message"),
    [
        ("psycopg", "from aiscope.server.db import normalize_url\n"
         "normalize_url('postgresql://u@h/db')", "aiscope[postgres]"),
        ("opentelemetry.exporter.otlp.proto.grpc", "from aiscope.tracing.otlp import "
         "otlp_exporter\notlp_exporter('http://h:4317', 'grpc')", "aiscope[grpc]"),
    ],
)  # fmt: skip
def test_a_missing_extra_is_an_error_naming_it(hidden: str, code: str, message: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _HIDE.format(hidden) + code],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1 and message in out.stderr.strip().splitlines()[-1], out.stderr


def test_a_lazy_import_racing_another_threads_gets_the_whole_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from aiscope._fork import lazy_import

    (tmp_path / "slow_racy_dependency.py").write_text("import time\ntime.sleep(0.3)\nVALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = threading.Thread(target=lazy_import, args=("slow_racy_dependency",))
    first.start()
    time.sleep(0.1)  # the first thread is inside the module's import now
    assert lazy_import("slow_racy_dependency").VALUE == 42
    first.join()


@pytest.mark.parametrize(
    ("package", "module"),
    [
        ("aiscope.client", "aiscope.client.errors"),
        ("aiscope.resilience", "aiscope.resilience.errors"),
        ("aiscope.cost", "aiscope.cost.budget"),
    ],
)
def test_every_error_class_users_catch_is_exported_by_its_package(
    package: str, module: str
) -> None:
    pkg, mod = importlib.import_module(package), importlib.import_module(module)
    errors = {
        name for name, obj in vars(mod).items()
        if isinstance(obj, type) and issubclass(obj, Exception) and not name.startswith("_")
        and obj.__module__ == module
    }  # fmt: skip
    assert errors and errors <= set(pkg.__all__), sorted(errors - set(pkg.__all__))
    assert all(getattr(pkg, name) is getattr(mod, name) for name in errors)
