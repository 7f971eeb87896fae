"""HTTP API over a SearchEngine (FastAPI): /health, /search, /add; OpenAPI docs at /docs.

The model and index are loaded once. Searches run concurrently in FastAPI's thread pool;
adds are serialised by the engine's single writer and are committed to SQLite before the
response is sent, so an acknowledged add survives a crash and the next search sees it, in
this process or any other that has the index open (each request first catches up with the store).

Writes can be put behind a key (``Authorization: Bearer KEY`` or ``X-API-Key: KEY``, compared
in constant time); a server bound beyond loopback refuses to start without one unless it is
read-only.
"""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path
from typing import Optional

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from qsearch.errors import QsearchError
from qsearch.search import SearchEngine, clean_questions

MAX_BODY_BYTES = 1_000_000
MAX_QUERIES = 100
MAX_K = 100


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: Optional[StrictStr] = Field(None, description="One question.", examples=["How old are you?"])
    queries: Optional[list[StrictStr]] = Field(None, description=f"Several questions (at most {MAX_QUERIES}).")
    k: StrictInt = Field(5, ge=1, le=MAX_K, description="Neighbours per question.")
    threshold: Optional[StrictFloat | StrictInt] = Field(None, description="Cosine above which a match is a duplicate; null: the model's.")


class AddRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    questions: list[StrictStr] = Field(..., min_length=1, max_length=MAX_QUERIES, examples=[["Which moon of Jupiter has the thickest ice?"]])
    k: StrictInt = Field(5, ge=1, le=MAX_K)
    threshold: Optional[StrictFloat | StrictInt] = None


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


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


def _key_matches(request: Request, api_key: str) -> bool:
    given = request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    if given is None and auth[:7].lower() == "bearer ":
        given = auth[7:].strip()
    return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), api_key.encode("utf-8"))


def create_app(engine: SearchEngine, api_key: str | None = None, read_only: bool = False) -> FastAPI:
    """An app serving ``engine``; the caller owns opening and closing it.

    With ``api_key``, /add needs that key; with ``read_only``, /add is refused (403).
    """
    app = FastAPI(title="qsearch", description="Duplicate-question search over HTTP.", version="0.1.0")

    app.add_middleware(BodyLimit)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return _error(422, f"{where}: {first['msg']}" if where else first["msg"])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(QsearchError)
    async def refused(request: Request, exc: QsearchError):
        return _error(400, str(exc))

    @app.get("/health")
    def health() -> dict:
        """Liveness, the number of stored questions (all searchable) and the model in use."""
        engine.refresh()
        return {
            "status": "ok", "questions": len(engine.store), "model": engine.encoder.name, "threshold": engine.threshold,
            "writable": not (read_only or engine.read_only),
        }

    @app.post("/search")
    def search(req: SearchRequest):
        """Nearest known questions: ``{"query": ...}`` or ``{"queries": [...]}``."""
        if (req.query is None) == (req.queries is None):
            return _error(422, "give exactly one of 'query' or 'queries'")
        queries = [req.query] if req.query is not None else req.queries
        if not queries:
            return _error(422, "queries: give at least one question")
        if len(queries) > MAX_QUERIES:
            return _error(422, f"queries: at most {MAX_QUERIES} per request")
        queries = clean_questions(queries)
        results = engine.search(queries, req.k, req.threshold)
        if req.query is not None:
            return {"matches": [m.to_dict() for m in results[0]]}
        return {"results": [{"query": q, "matches": [m.to_dict() for m in ms]} for q, ms in zip(queries, results)]}

    @app.post("/add")
    def add(req: AddRequest, request: Request):
        """Report the duplicates already known for each question, then add the questions."""
        if read_only:
            return _error(403, "this server is read-only: adds are refused")
        if api_key is not None and not _key_matches(request, api_key):
            return _error(401, "adding needs the server's API key (Authorization: Bearer KEY or X-API-Key: KEY)")
        questions = clean_questions(req.questions)
        ids, matches = engine.search_and_add(questions, req.k, req.threshold)
        return {
            "results": [
                {"query": q, "id": i, "matches": [m.to_dict() for m in ms]} for q, i, ms in zip(questions, ids, matches)
            ]
        }

    return app


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(index: Path, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None, read_only: bool = False) -> None:
    """Open the index once and serve it until interrupted; writes the checkpoint on the way out.

    Beyond loopback, writes need ``api_key`` unless the server is ``read_only``.
    """
    import uvicorn

    if api_key is not None and not api_key.strip():
        raise QsearchError("the API key is empty; give a long random string (or none on loopback)")
    if not is_loopback(host) and api_key is None and not read_only:
        raise QsearchError(
            f"binding to {host} would let anyone who reaches the port add questions: "
            "give --api-key (or set QSEARCH_API_KEY), or pass --read-only"
        )
    engine = SearchEngine.open(index)
    try:
        uvicorn.run(create_app(engine, api_key, read_only), host=host, port=port, log_level="warning")
    finally:
        engine.close()
