"""HTTP API and search page over a SearchEngine (FastAPI): /, /health, /search, /add, /remove,
/dedup, /metrics; OpenAPI docs at /docs.

The model and index are loaded once. Searches run concurrently in FastAPI's thread pool;
adds are serialised by the engine's single writer and are committed to SQLite before the
response is sent, so an acknowledged add survives a crash and the next search sees it, in
this process or any other that has the index open (each request first catches up with the store).

Writes can be put behind a key (``Authorization: Bearer KEY`` or ``X-API-Key: KEY``, compared
in constant time); a server bound beyond loopback refuses to start without one unless it is
read-only.

Every request is counted in /metrics (Prometheus) and logged as one JSON line on the
``qsearch.access`` logger; question texts are logged only when asked (``log_questions``).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from qsearch import __version__, metrics
from qsearch.errors import DiskFull, QsearchError
from qsearch.search import SearchEngine, added_json, check_threshold, clean_questions, removed_json, results_json

MAX_BODY_BYTES = 1_000_000
MAX_QUERIES = 100
MAX_K = 100
MAX_DEDUP = 5000
WEB = resources.files("qsearch") / "web"
access_log = logging.getLogger("qsearch.access")

if TYPE_CHECKING:
    import pandas as pd


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: Optional[StrictStr] = Field(None, description="One question.", examples=["How old are you?"])
    queries: Optional[list[StrictStr]] = Field(None, description=f"Several questions (at most {MAX_QUERIES}).")
    k: StrictInt = Field(5, ge=1, le=MAX_K, description="Neighbours per question.")
    threshold: Optional[StrictFloat | StrictInt] = Field(None, description="Verdict score (cosine less the word gap) above which a match is a duplicate; null: the model's.")


class AddRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    questions: list[StrictStr] = Field(..., min_length=1, max_length=MAX_QUERIES, examples=[["Which moon of Jupiter has the thickest ice?"]])
    k: StrictInt = Field(5, ge=1, le=MAX_K)
    threshold: Optional[StrictFloat | StrictInt] = None


class RemoveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    questions: list[StrictStr] = Field([], max_length=MAX_QUERIES, description="Stored questions, matched exactly.")
    ids: list[StrictInt] = Field([], max_length=MAX_QUERIES, description="Stored questions' ids (as /add and /search give them).")


class DedupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    questions: Optional[list[StrictStr]] = Field(None, description=f"The questions, one per item (at most {MAX_DEDUP}).")
    file: Optional[StrictStr] = Field(None, description="A file's text instead: CSV/TSV with a question column, or one question a line.")
    name: StrictStr = Field("questions.txt", description="The file's name; its ending (.csv, .tsv, .txt) says how to read it.")
    column: Optional[StrictStr] = Field(None, description="The CSV column holding the questions (default: question).")
    threshold: Optional[StrictFloat | StrictInt] = Field(None, description="Verdict score (cosine less the word gap) above which two questions join a cluster; null: the model's.")


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with a 413 JSON error.

    Plain ASGI: a declared Content-Length is checked before anything is read, a chunked
    body as it streams in (FastAPI passes the HTTPException through as a 413).
    """

    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refuse = _error(413, f"request body over {self.limit} bytes")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await refuse(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, f"request body over {self.limit} bytes")
            return message

        await self.app(scope, counted, send)


class Observe:
    """Count every request in /metrics and log it as one JSON line (plain ASGI: cheaper than
    Starlette's BaseHTTPMiddleware on every request)."""

    def __init__(self, app, log_questions: bool = False):
        self.app, self.log_questions = app, log_questions

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status, counted = 500, False

        def count() -> None:
            nonlocal counted
            if not counted:
                metrics.REQUESTS.labels(_route(scope), scope.get("method", ""), str(status)).inc()
                counted = True

        async def observed(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                count()  # before the answer goes out, so a scrape that follows an answer (on any worker) includes it
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            count()  # a request that failed before answering
            self._record(scope, status, time.perf_counter() - start)

    def _record(self, scope, status: int, seconds: float) -> None:
        path = scope.get("path", "")
        metrics.LATENCY.labels(_route(scope)).observe(seconds)
        if access_log.isEnabledFor(logging.INFO):
            client = scope.get("client")
            line = {
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "method": scope.get("method"), "path": path,
                "status": status, "ms": round(seconds * 1000, 2), "client": client[0] if client else None,
            }
            questions = scope.get("state", {}).get("questions")
            if self.log_questions and questions:
                line["questions"] = questions
            access_log.info(json.dumps(line, ensure_ascii=False))


def _route(scope) -> str:
    """The route a request matched, as /metrics labels it."""
    path = scope.get("path", "")
    return getattr(scope.get("route"), "path", None) or ("/static" if path.startswith("/static/") else "other")


def _key_matches(request: Request, api_key: str) -> bool:
    given = request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    if given is None and auth[:7].lower() == "bearer ":
        given = auth[7:].strip()
    return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), api_key.encode("utf-8"))


def _read_upload(req: DedupRequest) -> tuple[pd.DataFrame, str]:
    """The rows and question column of a /dedup request (a list, or a file's text)."""
    import pandas as pd

    from qsearch.dedup import read_rows

    if (req.questions is None) == (req.file is None):
        raise QsearchError("give exactly one of 'questions' or 'file'")
    if req.questions is not None:
        return pd.DataFrame({"question": req.questions}), "question"
    suffix = Path(req.name).suffix.lower()
    if suffix not in (".csv", ".tsv", ".txt"):
        raise QsearchError(f"{Path(req.name).name}: give a .csv, .tsv or .txt file")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_text(req.file, encoding="utf-8", errors="replace")
        return read_rows(path, req.column)


def _dedup_answer(engine: SearchEngine, req: DedupRequest) -> dict:
    """Clusters of the request's questions (largest first), and every row for a CSV download."""
    from qsearch.dedup import dedup

    rows, column = _read_upload(req)
    if len(rows) > MAX_DEDUP:
        raise QsearchError(f"{len(rows)} questions: the page clusters at most {MAX_DEDUP}; run `qsearch dedup FILE` for more")
    if not len(rows):
        raise QsearchError("no questions to cluster")
    result = dedup(rows, column, engine.encoder, check_threshold(req.threshold), against=engine)
    out = result.rows
    table = [
        {
            "row": n, "question": str(q), "cluster": int(c), "cluster_size": int(size),
            "index_id": None if _missing(i) else int(i), "index_text": t, "index_score": None if _missing(sc) else float(sc),
        }
        for n, (q, c, size, i, t, sc) in enumerate(
            zip(out[column], out["cluster"], out["cluster_size"], out["index_id"], out["index_text"], out["index_score"])
        )
    ]
    clusters: dict[int, list[dict]] = {}
    for row in table:
        if row["cluster_size"] > 1:
            clusters.setdefault(row["cluster"], []).append(row)
    ordered = sorted(clusters.values(), key=len, reverse=True)
    return {
        "questions": len(table), "threshold": result.threshold, "pairs": result.pairs,
        "clusters": [[{"row": r["row"], "question": r["question"]} for r in c] for c in ordered],
        "rows": table,
    }


def _missing(value) -> bool:
    """Whether a pandas cell is missing (None, NaN or pandas.NA)."""
    import pandas as pd

    return bool(pd.isna(value))


def create_app(
    engine: SearchEngine, api_key: str | None = None, read_only: bool = False,
    log_questions: bool = False, close_engine: bool = False,
) -> FastAPI:
    """An app serving ``engine`` (the page at /, the JSON API, /metrics).

    With ``api_key``, /add and /remove need that key; with ``read_only``, they are refused (403). With
    ``close_engine``, the app closes the engine (writing its checkpoint) when the server shuts
    down, after the requests in flight have finished; otherwise the caller closes it.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if close_engine:
            engine.close()

    app = FastAPI(title="qsearch", description="Duplicate-question search over HTTP.", version=__version__, lifespan=lifespan)
    metrics.BUILD.labels(__version__).set(1)

    app.add_middleware(BodyLimit)

    app.add_middleware(Observe, log_questions=log_questions)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":  # its loc is a character offset, which reads as a field named 0
            return _error(422, "the body is not valid JSON; send an object such as {\"query\": \"How old are you?\"}")
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return _error(422, f"{where}: {first['msg']}" if where else first["msg"])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 405:  # a GET /search from a browser or a plain curl: say what the route takes
            allowed = [m for m in (m.strip() for m in (exc.headers or {}).get("Allow", "").split(",")) if m and m != "HEAD"]
            path = request.url.path
            body = " with a JSON body (the API is described at /docs)" if "POST" in allowed else ""
            use = f"; send {' or '.join(allowed)} {path}{body}" if allowed else ""
            return _error(405, f"{request.method} {path} is not allowed{use}", exc.headers)
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(QsearchError)
    async def refused(request: Request, exc: QsearchError):
        return _error(507 if isinstance(exc, DiskFull) else 400, str(exc))  # 507 Insufficient Storage: the server's disk, not the request

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        """The search page: find existing questions as you type, post a new one, cluster a list."""
        return HTMLResponse((WEB / "index.html").read_text(encoding="utf-8"))

    app.mount("/static", StaticFiles(directory=str(WEB)), name="static")

    @app.get("/health")
    def health() -> dict:
        """Liveness, qsearch's version, the number of stored questions (all searchable), the model
        in use, and whether `qsearch repair` is advised: adds have grown the index enough that
        hubness should be measured again, or a pq-refine or HNSW index hides 1,000 removed questions."""
        engine.refresh()
        metrics.QUESTIONS.set(len(engine))
        return {
            "status": "ok", "version": __version__, "questions": len(engine), "model": engine.encoder.name, "threshold": engine.threshold,
            "writable": not (read_only or engine.read_only), "needs_key": api_key is not None, "max_dedup": MAX_DEDUP,
            "hubness_measured_for": engine.hubness_measured_for, "repair_advised": engine.repair_advised(),
        }

    @app.get("/metrics", include_in_schema=False)
    def scrape() -> Response:
        """Prometheus metrics: requests by route and status, latency histograms, index size, adds, removals."""
        engine.refresh()
        metrics.QUESTIONS.set(len(engine))
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)

    @app.post("/search")
    def search(req: SearchRequest, request: Request):
        """Nearest known questions: ``{"query": ...}`` or ``{"queries": [...]}``."""
        if (req.query is None) == (req.queries is None):
            return _error(422, "give exactly one of 'query' or 'queries'")
        queries = [req.query] if req.query is not None else req.queries
        if not queries:
            return _error(422, "queries: give at least one question")
        if len(queries) > MAX_QUERIES:
            return _error(422, f"queries: at most {MAX_QUERIES} per request")
        request.state.questions = queries
        queries = clean_questions(queries)
        results = engine.search(queries, req.k, req.threshold)
        read_as = [engine.encoder.read_as(q) for q in queries]
        answers = results_json(queries, results, read_as)
        if req.query is not None:
            return {k: v for k, v in answers[0].items() if k != "query"}
        return {"results": answers}

    @app.post("/add")
    def add(req: AddRequest, request: Request):
        """Report the duplicates already known for each question, then add the new ones.

        ``added`` is false for an exact repeat of a stored question (its existing id is given).
        """
        if read_only:
            return _error(403, "this server is read-only: adds are refused")
        if api_key is not None and not _key_matches(request, api_key):
            return _error(401, "adding needs the server's API key (Authorization: Bearer KEY or X-API-Key: KEY)")
        request.state.questions = req.questions
        questions = clean_questions(req.questions)
        ids, matches, added = engine.search_and_add(questions, req.k, req.threshold)
        metrics.ADDED.inc(sum(added))
        return {"results": added_json(questions, ids, added, matches, [engine.encoder.read_as(q) for q in questions])}

    @app.post("/remove")
    def remove(req: RemoveRequest, request: Request):
        """Take stored questions out of the index, by text or by id: deleted from the forum, or
        merged into another. ``removed`` is false for one that was not stored."""
        if read_only:
            return _error(403, "this server is read-only: removals are refused")
        if api_key is not None and not _key_matches(request, api_key):
            return _error(401, "removing needs the server's API key (Authorization: Bearer KEY or X-API-Key: KEY)")
        if not req.questions and not req.ids:
            return _error(422, "give 'questions' or 'ids' (or both), at least one")
        request.state.questions = req.questions
        questions = clean_questions(req.questions) if req.questions else []
        by_text = engine.remove(questions) if questions else []
        by_id = engine.remove_ids(req.ids)
        metrics.REMOVED.inc(len({i for i in by_text if i is not None} | set(by_id)))
        return {"results": removed_json(questions, by_text, req.ids, by_id), "questions": len(engine)}

    @app.post("/dedup")
    def find_clusters(req: DedupRequest):
        """Clusters of duplicates inside a list or file of questions, each row's best index match.

        At most ``MAX_DEDUP`` questions (the CLI's ``qsearch dedup`` has no limit).
        """
        return _dedup_answer(engine, req)

    return app


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_SETTINGS = "QSEARCH_SERVE_SETTINGS"


def worker_app() -> FastAPI:
    """The app of one worker process of ``serve --workers N`` (settings passed in the environment).

    Each worker opens the index itself; every request catches up with the shared store, so
    each worker sees every question that any of them (or any other process) committed.
    """
    settings = json.loads(os.environ[_SETTINGS])
    _log_access(settings["access_log"])
    engine = SearchEngine.open(Path(settings["index"]))
    return create_app(
        engine, os.environ.get("QSEARCH_API_KEY") if settings["api_key"] else None, settings["read_only"],
        settings["log_questions"], close_engine=True,
    )


def _log_access(enabled: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_log.handlers[:] = [handler]
    access_log.propagate = False
    access_log.setLevel(logging.INFO if enabled else logging.WARNING)


def _check_port_free(host: str, port: int) -> None:
    """A clear line when the address is taken or unknown, before the index is opened (uvicorn
    alone would log a bare ERROR and exit 3)."""
    if not port:
        return
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except OSError as e:
        raise QsearchError(f"cannot listen on {host}: {e.strerror or e}; check --host") from None
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a port in TIME_WAIT is free
            probe.bind((host, port))
    except OSError as e:
        raise QsearchError(f"cannot listen on {host}:{port}: {e.strerror or e}; is another server there? pick another --port") from None


def serve(
    index: Path, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None, read_only: bool = False,
    workers: int = 1, access_log_enabled: bool = True, log_questions: bool = False, ready: Callable[[], None] | None = None,
) -> None:
    """Serve the index until interrupted (Ctrl-C or SIGTERM), then shut down gracefully.

    Requests in flight finish, then each process writes its vector checkpoint. Beyond
    loopback, writes need ``api_key`` unless the server is ``read_only``. With ``workers`` > 1,
    that many processes share the port and the index (the store is the one truth).
    ``ready`` is called once the settings, the port and the index are checked, before serving.
    """
    import uvicorn

    if api_key is not None and not api_key.strip():
        raise QsearchError("the API key is empty; give a long random string (or none on loopback)")
    if not is_loopback(host) and api_key is None and not read_only:
        raise QsearchError(
            f"binding to {host} would let anyone who reaches the port add or remove questions: "
            "give --api-key (or set QSEARCH_API_KEY), or pass --read-only"
        )
    if workers < 1:
        raise QsearchError(f"--workers must be at least 1, got {workers}")
    _check_port_free(host, port)
    ready = ready or (lambda: None)
    options = {"host": host, "port": port, "log_level": "warning", "access_log": False}
    if workers == 1:
        _log_access(access_log_enabled)
        engine = SearchEngine.open(index)  # closed by the app's shutdown: uvicorn re-raises SIGTERM after it
        ready()
        uvicorn.run(create_app(engine, api_key, read_only, log_questions, close_engine=True), **options)
        return
    engine = SearchEngine.open(index)  # a broken index is one clear error here, not one per worker
    lite = engine.manifest.get("backend") == "milvus" and "://" not in engine.manifest["milvus_uri"]
    engine.close()
    if lite:
        raise QsearchError("Milvus Lite opens in one process only: use --workers 1, or a Milvus server for several processes")
    with tempfile.TemporaryDirectory(prefix="qsearch-metrics-") as tmp:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tmp
        os.environ[_SETTINGS] = json.dumps({
            "index": str(Path(index).resolve()), "api_key": api_key is not None, "read_only": read_only,
            "access_log": access_log_enabled, "log_questions": log_questions,
        })
        if api_key is not None:
            os.environ["QSEARCH_API_KEY"] = api_key
        ready()
        uvicorn.run("qsearch.server:worker_app", factory=True, workers=workers, **options)
