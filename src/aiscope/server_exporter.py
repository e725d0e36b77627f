"""ServerExporter: a sink that sends every CallRecord to an aiscope server.

::

    exporter = ServerExporter("http://127.0.0.1:6363", api_key="ask_pub_...")
    aiscope.configure(sinks=[exporter])          # or Scope(sinks=[exporter])

Records are queued (bounded: more are dropped and counted) and POSTed as JSON to
the server's ``/api/ingest/calls`` in batches from a background thread, so a slow
or absent server never blocks or breaks the application. The server stores them
exactly as it stores OTLP spans: same pricing (a record's own cost is kept), same
rollups, and the same de-duplication, so a call also traced to the server over
OTLP (same trace and span id) is stored once.
"""

from __future__ import annotations

import atexit
import logging
import math
import weakref
from typing import Any
from urllib.parse import urlsplit

import httpx2

from aiscope.batching import BoundedBatcher
from aiscope.record import CallRecord
from aiscope.record_json import record_to_json
from aiscope.resilience.retry import RetryPolicy, parse_retry_after

log = logging.getLogger("aiscope.server_exporter")

INGEST_PATH = "/api/ingest/calls"
#: answers worth sending the same batch again for (the server may take it later)
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class ServerExporter(BoundedBatcher[dict[str, Any]]):
    """Send records to an aiscope server (a Scope sink).

    ``url`` is the server's base URL (``http://host:6363``); ``api_key`` the
    project's public key (none for a server in local-only mode). Failed batches are
    retried as ``retry`` (a :class:`~aiscope.resilience.RetryPolicy`) says: by default up to
    ``max_retries`` times on connection errors and 408/429/5xx, after an exponential
    backoff from ``backoff_s`` with full jitter, or after the server's ``Retry-After``
    when that is longer; then they are counted in ``failed``. Records refused by a
    full queue are counted in ``dropped``; ``exported`` counts records handed to the
    server.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        max_queue_size: int = 2048,
        max_export_batch_size: int = 512,
        schedule_delay_s: float = 1.0,
        timeout_s: float = 10.0,
        max_retries: int | None = None,
        backoff_s: float | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx2.BaseTransport | None = None,
    ) -> None:
        self.endpoint = _endpoint(url)
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            raise ValueError("api_key must be a non-empty str (the project's public key) or None")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or timeout_s <= 0:
            raise ValueError(f"timeout_s must be a number > 0, got {timeout_s!r}")
        if retry is not None:
            if not isinstance(retry, RetryPolicy):
                raise TypeError(f"retry must be an aiscope.resilience.RetryPolicy, got {retry!r}")
            if max_retries is not None or backoff_s is not None:
                raise ValueError("give retry= or max_retries=/backoff_s=, not both")
        else:
            if max_retries is None:
                max_retries = 2
            if backoff_s is None:
                backoff_s = 0.5
            if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
                raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
            if (
                isinstance(backoff_s, bool)
                or not isinstance(backoff_s, int | float)
                or not math.isfinite(backoff_s)
                or backoff_s < 0
            ):
                raise ValueError(f"backoff_s must be a number of seconds >= 0, got {backoff_s!r}")
            retry = RetryPolicy(
                max_retries=max_retries,
                base_delay_s=float(backoff_s),
                max_delay_s=max(30.0, float(backoff_s)),
                retry_on_status=_RETRY_STATUS,
            )
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout_s = float(timeout_s)
        #: how failed batches are retried (attempts, backoff with jitter, Retry-After)
        self.retry = retry
        self._transport = transport
        # Made here, on the caller's thread, not lazily on the worker: building it
        # imports modules (httpcore), and a fork while the worker held that import's
        # lock would leave every child's exporter stuck on it.
        self._http: httpx2.Client | None = self._client()
        #: records the server refused (4xx: bad data, retrying would not help)
        self.rejected = 0
        super().__init__(
            max_queue_size=max_queue_size,
            max_export_batch_size=max_export_batch_size,
            schedule_delay_s=schedule_delay_s,
            thread_name="aiscope-server-export",
        )
        atexit.register(_close_at_exit, weakref.ref(self))

    def __repr__(self) -> str:
        return f"ServerExporter({self.endpoint!r})"

    # -- the sink ---------------------------------------------------------------------------
    def on_record(self, record: CallRecord) -> None:
        """Queue a copy of ``record`` for sending (never blocks)."""
        self._put(record_to_json(record))

    def flush(self, timeout: float = 5.0) -> bool:
        """Send everything queued now; wait at most ``timeout`` seconds. True only when
        the server took all of it; False when time ran out or a batch was lost (counted
        in ``failed``)."""
        return self.force_flush(int(timeout * 1000))

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (at most ``timeout`` seconds), then stop."""
        self.shutdown(int(timeout * 1000))

    def __enter__(self) -> ServerExporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the worker -------------------------------------------------------------------------
    def _export(self, batch: list[dict[str, Any]]) -> bool:
        if self._http is None:
            self._http = self._client()
        policy = self.retry
        attempt = 0
        while True:
            status: int | None = None
            error: httpx2.HTTPError | None = None
            retry_after: float | None = None
            try:
                resp = self._http.post(self.endpoint, json={"calls": batch}, headers=self._headers)
            except httpx2.HTTPError as exc:
                log.debug("aiscope server unreachable (%s), attempt %d", exc, attempt + 1)
                error = exc
            except RuntimeError:
                # a shutdown past its timeout closed the client under this worker
                if not self._http.is_closed:
                    raise
                break
            else:
                if resp.is_success:
                    return True
                status = resp.status_code
                if status not in policy.retry_on_status:
                    self.rejected += len(batch)
                    log.warning(
                        "aiscope server refused %d records: %s %s",
                        len(batch),
                        status,
                        resp.text[:500],
                    )
                    return False
                # the server says when it can take them (503 from a busy store, 429)
                retry_after = parse_retry_after(resp.headers)
            if not policy.should_retry(attempt, status=status, exc=error):
                break
            # jittered, so exporters that failed together do not retry together; a
            # shutdown cuts the wait short (and the retries)
            if not self._pause(policy.delay_s(attempt, retry_after)):
                break
            attempt += 1
        log.warning("aiscope server did not take %d records; they are lost", len(batch))
        return False

    def _client(self) -> httpx2.Client:
        return httpx2.Client(timeout=self.timeout_s, transport=self._transport)

    def _after_fork(self) -> None:
        # The parent's client may hold a kept-alive connection: the same socket used
        # from two processes would mix their requests and answers. Leave it to the
        # parent (not closed here) and connect afresh.
        self._http = None

    def _close(self) -> None:
        if self._http is not None:
            self._http.close()


def _endpoint(url: str) -> str:
    if not isinstance(url, str) or not url:
        raise ValueError(f"url must be the server's URL, e.g. http://127.0.0.1:6363, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"url must be an http(s):// URL with a host, got {url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith(INGEST_PATH):
        path += INGEST_PATH
    return f"{parts.scheme}://{parts.netloc}{path}"


def _close_at_exit(ref: weakref.ref[ServerExporter]) -> None:
    exporter = ref()
    if exporter is not None:
        exporter.close(timeout=2.0)


__all__ = ["INGEST_PATH", "ServerExporter"]
