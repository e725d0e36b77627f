"""Where alert events go: the log, a generic JSON webhook, Slack, PagerDuty.

A notifier's :meth:`~Notifier.send` delivers one event and raises if it could
not. :class:`Delivery` wraps a notifier in a bounded queue and a background
thread that retries as a :class:`~aiscope.resilience.RetryPolicy` says (exponential
backoff with jitter, the receiver's ``Retry-After`` honoured), so an evaluator (and therefore the
application) never waits for a slow or dead receiver; what cannot be queued or
delivered is counted.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
from typing import Any, Protocol, runtime_checkable

import httpx2

from aiscope.alerts.events import AlertEvent, iso_utc
from aiscope.resilience.retry import RetryPolicy, parse_retry_after

log = logging.getLogger("aiscope.alerts")

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
_PD_SEVERITY = {"info": "info", "warning": "warning", "error": "error", "critical": "critical"}


class DeliveryError(Exception):
    """A receiver refused an event; ``retryable`` says whether trying again may help,
    ``retry_after`` how many seconds the receiver asked to wait (None: it did not say)."""

    def __init__(self, message: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@runtime_checkable
class Notifier(Protocol):
    """Delivers alert events (synchronously; :class:`Delivery` makes it background)."""

    name: str

    def send(self, event: AlertEvent) -> None:
        """Deliver ``event`` or raise."""


class LogNotifier:
    """Writes events to the ``aiscope.alerts`` logger (critical at ERROR level)."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or log

    def send(self, event: AlertEvent) -> None:
        """Log one line."""
        if event.state == "resolved":
            level = logging.INFO
        elif event.severity in ("critical", "error"):
            level = logging.ERROR
        else:
            level = logging.WARNING
        self.logger.log(level, "alert %s", event.summary, extra={"alert": event.as_dict()})


class WebhookNotifier:
    """POSTs each event as JSON (:meth:`payload`) to ``url``."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout_s: float = 5.0,
        transport: httpx2.BaseTransport | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http(s) URL, got {url!r}")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or timeout_s <= 0:
            raise ValueError(f"timeout_s must be a number of seconds > 0, got {timeout_s!r}")
        self.url = url
        self.headers = dict(headers or {})
        self._client = httpx2.Client(timeout=timeout_s, transport=transport)

    def payload(self, event: AlertEvent) -> dict[str, Any]:
        """The JSON body for ``event``."""
        return event.as_dict()

    def send(self, event: AlertEvent) -> None:
        """POST the payload; 429 and 5xx are retryable, other 4xx are not."""
        try:
            resp = self._client.post(self.url, json=self.payload(event), headers=self.headers)
        except httpx2.HTTPError as exc:
            raise DeliveryError(f"{self.name}: {type(exc).__name__}: {exc}", True) from exc
        if resp.status_code >= 400:
            retryable = resp.status_code == 429 or resp.status_code >= 500
            raise DeliveryError(
                f"{self.name}: HTTP {resp.status_code}",
                retryable,
                parse_retry_after(resp.headers) if retryable else None,
            )

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()


class SlackNotifier(WebhookNotifier):
    """Posts to a Slack incoming webhook (``text`` plus Block Kit ``blocks``)."""

    name = "slack"

    def payload(self, event: AlertEvent) -> dict[str, Any]:
        """Slack's incoming-webhook message."""
        icon = (
            ":white_check_mark:"
            if event.state == "resolved"
            else (":rotating_light:" if event.severity == "critical" else ":warning:")
        )
        value = "no data" if event.value is None else f"{event.value:.4g}"
        fields = [
            {"type": "mrkdwn", "text": f"*Severity*\n{event.severity}"},
            {"type": "mrkdwn", "text": f"*State*\n{event.state}"},
            {"type": "mrkdwn", "text": f"*{event.signal}*\n{value}"},
            {
                "type": "mrkdwn",
                "text": f"*Threshold*\n{event.comparison} {event.threshold:g} over {event.window}",
            },
            *({"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in sorted(event.labels.items())),
        ]
        return {
            "text": f"{icon} {event.summary}",
            "blocks": [
                {
                    "type": "header",
                    "text": {"type": "plain_text", "text": f"{event.rule} {event.state}"[:150]},
                },
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": f"{icon} {event.description or event.summary}",
                    },
                    "fields": fields[:10],  # Slack's limit per section
                },
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": f"aiscope · {iso_utc(event.at)}"}],
                },
            ],
        }


class PagerDutyNotifier(WebhookNotifier):
    """Sends PagerDuty Events API v2 events: ``trigger`` when firing, ``resolve``
    when resolved, with the alert's ``dedup_key`` so the two meet."""

    name = "pagerduty"

    def __init__(
        self,
        routing_key: str,
        *,
        url: str = PAGERDUTY_EVENTS_URL,
        source: str | None = None,
        timeout_s: float = 5.0,
        transport: httpx2.BaseTransport | None = None,
    ) -> None:
        if not isinstance(routing_key, str) or not routing_key:
            raise ValueError("routing_key must be a non-empty str (the integration key)")
        super().__init__(url, timeout_s=timeout_s, transport=transport)
        self.routing_key = routing_key
        self.source = source or socket.gethostname()

    def payload(self, event: AlertEvent) -> dict[str, Any]:
        """The Events API v2 body."""
        if event.state == "resolved":
            return {
                "routing_key": self.routing_key,
                "event_action": "resolve",
                "dedup_key": event.dedup_key,
            }
        return {
            "routing_key": self.routing_key,
            "event_action": "trigger",
            "dedup_key": event.dedup_key,
            "payload": {
                "summary": event.summary[:1024],
                "source": self.source,
                "severity": _PD_SEVERITY[event.severity],
                "timestamp": iso_utc(event.at),
                "component": event.labels.get("model", "llm"),
                "group": event.labels.get("feature", "aiscope"),
                "class": event.signal,
                "custom_details": event.as_dict(),
            },
            "client": "aiscope",
        }


class Delivery:
    """Delivers a notifier's events from a background thread.

    :meth:`submit` never blocks: a full queue drops the event (``dropped``). Each
    event is tried up to ``1 + max_retries`` times (not retrying what the receiver
    refused for good); between tries it waits as ``retry`` says, by default a
    :class:`~aiscope.resilience.RetryPolicy` with an exponential backoff from
    ``backoff_s`` doubling up to ``max_backoff_s``, with full jitter (receivers that
    failed for many senders at once are not hit again all at once), or the receiver's
    ``Retry-After`` when it asks for longer.
    """

    def __init__(
        self,
        notifier: Notifier,
        *,
        max_queue: int = 1000,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not callable(getattr(notifier, "send", None)):
            raise TypeError(f"notifier must have a send(event) method, got {notifier!r}")
        if retry is None:
            retry = RetryPolicy(
                max_retries=max_retries,
                base_delay_s=backoff_s,
                max_delay_s=max(max_backoff_s, backoff_s),
            )
        elif not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be an aiscope.resilience.RetryPolicy, got {retry!r}")
        self.notifier = notifier
        #: how failed deliveries are retried
        self.retry = retry
        self.max_retries = retry.max_retries
        self.backoff_s = retry.base_delay_s
        self.max_backoff_s = retry.max_delay_s
        self._queue: queue.Queue[AlertEvent | None] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        # set when close() ran out of time: what is still queued is counted, not sent
        self._abandon = threading.Event()
        self._count_lock = threading.Lock()
        self._notifier_closed = False
        self.delivered = 0
        #: events not delivered: refused for good, out of retries, or left when close()
        #: ran out of time
        self.failed = 0
        self._failed_seen = 0  # ``failed`` as of the last flush
        self.dropped = 0
        self.retries = 0
        self._thread = threading.Thread(
            target=self._run,
            name=f"aiscope-alerts-{getattr(notifier, 'name', 'notifier')}",
            daemon=True,
        )
        self._thread.start()

    def submit(self, event: AlertEvent) -> bool:
        """Queue ``event``; False (and counted in ``dropped``) if the queue is full."""
        try:
            self._queue.put_nowait(event)
            return True
        except queue.Full:
            with self._count_lock:  # submitters may be many threads
                self.dropped += 1
            return False

    def _run(self) -> None:
        try:
            while True:
                event = self._queue.get()
                try:
                    if event is None:
                        return
                    if self._abandon.is_set():
                        self.failed += 1
                    else:
                        self._deliver(event)
                finally:
                    self._queue.task_done()
                if self._stop.is_set() and self._queue.empty():
                    return  # closing, and nothing left (the stop marker may not fit)
        finally:
            if self._stop.is_set():
                self._close_notifier()

    def _deliver(self, event: AlertEvent) -> None:
        policy = self.retry
        name = getattr(self.notifier, "name", "notifier")
        for attempt in range(policy.max_retries + 1):
            try:
                self.notifier.send(event)
                self.delivered += 1
                return
            except Exception as exc:
                # a notifier's own exception without a verdict is worth another try
                retryable = getattr(exc, "retryable", True)
                if not retryable or attempt == policy.max_retries or self._stop.is_set():
                    self.failed += 1
                    log.warning("alert notifier %s failed to deliver %s: %s", name, event.rule, exc)
                    return
                self.retries += 1
                retry_after = getattr(exc, "retry_after", None)
                if not isinstance(retry_after, int | float) or isinstance(retry_after, bool):
                    retry_after = None
                if self._stop.wait(policy.delay_s(attempt, retry_after)):
                    self.failed += 1
                    return

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every queued event was handled, at most ``timeout_s`` seconds.

        True only when that happened in time and every event handled since the last
        flush was delivered; False on a timeout or when an event failed (``failed``).
        """
        return self._flush_by(time.monotonic() + max(0.0, timeout_s))

    def _flush_by(self, deadline: float) -> bool:
        q = self._queue
        with q.all_tasks_done:  # what Queue.join() waits on, here with a deadline
            while q.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                q.all_tasks_done.wait(remaining)
        with self._count_lock:
            ok = self.failed == self._failed_seen
            self._failed_seen = self.failed
        return ok

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued, then stop the thread; returns within ``timeout_s``
        seconds in all. Events still queued then are not sent (counted in ``failed``)."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        self._flush_by(deadline)
        self._begin_stop()
        self._finish_by(deadline)

    def _begin_stop(self) -> None:
        self._stop.set()  # no more retries or backoff waits
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    def _finish_by(self, deadline: float) -> None:
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            # Still inside a send to a slow receiver: leave it; it skips the rest
            # of the queue and closes the notifier when it is done.
            self._abandon.set()
        else:
            self._close_notifier()

    def _close_notifier(self) -> None:
        with self._count_lock:
            if self._notifier_closed:
                return
            self._notifier_closed = True
        close = getattr(self.notifier, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                log.warning("alert notifier failed to close", exc_info=True)


__all__ = [
    "PAGERDUTY_EVENTS_URL",
    "Delivery",
    "DeliveryError",
    "LogNotifier",
    "Notifier",
    "PagerDutyNotifier",
    "SlackNotifier",
    "WebhookNotifier",
]
