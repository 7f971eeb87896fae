"""HTTP API over a SearchEngine (FastAPI): /health, /search, /add; OpenAPI docs at /docs.

The model and index are loaded once. Searches run concurrently in FastAPI's thread pool;
adds are serialised by the engine's single writer and are committed to SQLite before the
response is sent, so an acknowledged add survives a crash and the next search sees it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from qsearch.errors import QsearchError
from qsearch.search import SearchEngine

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


def create_app(engine: SearchEngine) -> FastAPI:
    """An app serving ``engine``; the caller owns opening and closing it."""
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
        """Liveness, the number of indexed questions and the model in use."""
        return {"status": "ok", "questions": len(engine), "model": engine.encoder.name, "threshold": engine.threshold}

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
        results = engine.search(queries, req.k, req.threshold)
        if req.query is not None:
            return {"matches": [m.to_dict() for m in results[0]]}
        return {"results": [{"query": q, "matches": [m.to_dict() for m in ms]} for q, ms in zip(queries, results)]}

    @app.post("/add")
    def add(req: AddRequest):
        """Report the duplicates already known for each question, then add the questions."""
        ids, matches = engine.search_and_add(req.questions, req.k, req.threshold)
        return {
            "results": [
                {"query": q, "id": i, "matches": [m.to_dict() for m in ms]} for q, i, ms in zip(req.questions, ids, matches)
            ]
        }

    return app


def serve(index: Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Open the index once and serve it until interrupted; writes the checkpoint on the way out."""
    import uvicorn

    engine = SearchEngine.open(index)
    try:
        uvicorn.run(create_app(engine), host=host, port=port, log_level="warning")
    finally:
        engine.close()
