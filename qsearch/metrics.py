"""Prometheus metrics of a running server: requests by route and status, latency, index size, adds, removals, version.

One set of metric objects per process. With several worker processes (``serve --workers N``)
``PROMETHEUS_MULTIPROC_DIR`` is set before the workers start, each writes its values there,
and /metrics on any worker reports the sum over all of them (prometheus-client's documented
multiprocess mode), so a scrape through a load balancer sees the whole server.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry()
REQUESTS = Counter("qsearch_requests", "HTTP requests answered, by route and status.", ["route", "method", "status"], registry=REGISTRY)
LATENCY = Histogram(
    "qsearch_request_seconds", "Time to answer a request, by route.", ["route"], registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
QUESTIONS = Gauge(  # the worker that set it last has caught up last: with removals the count can fall, so not the max
    "qsearch_index_questions", "Questions stored and searchable in the index.", registry=REGISTRY, multiprocess_mode="livemostrecent"
)
BUILD = Gauge(  # the Prometheus convention for a version: a gauge of 1 labelled with it (an Info metric has no multiprocess mode)
    "qsearch_build_info", "Always 1; its label is the version of qsearch serving.", ["version"], registry=REGISTRY,
    multiprocess_mode="max",
)
ADDED = Counter("qsearch_questions_added", "New questions added through /add (exact repeats not counted).", registry=REGISTRY)
REMOVED = Counter("qsearch_questions_removed", "Questions removed through /remove (those not stored not counted).", registry=REGISTRY)
CONTENT_TYPE = CONTENT_TYPE_LATEST


def render() -> bytes:
    """The metrics in Prometheus text format, summed over worker processes when there are several."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
