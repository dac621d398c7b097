"""The ASGI app of `relabel serve` (Starlette): Label Studio's ML backend protocol, webhooks, and two pages.

    GET  /health        {"status": "UP"}: Label Studio checks it before every /setup and /predict (1 s timeout)
    POST /setup         {"model_version": "relabel round N"}: Label Studio calls it when connecting and before
                        predicting; a new version makes it fetch predictions again
    POST /predict       {"results": [...]}: the latest round's label and quality per task (predictions.py)
    POST /webhook       Label Studio's webhooks: checked, queued for the worker, acknowledged at once
    GET  /              the round report (the HTML of `relabel report`)
    GET  /status.json   `relabel status --json` plus the worker's state and last error

/setup, /predict, / and /status.json need HTTP basic auth (Label Studio's "Basic Authentication" for ML
backends); /webhook needs the shared secret header. Bodies are capped at ``[serve] max_body_bytes``.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from relabel.config import Config
from relabel.loop.rounds import Loop
from relabel.loop.store import Store
from relabel.service.predictions import current_model_version, predict, project_of
from relabel.service.webhooks import SECRET_HEADER, basic_auth_matches, event_of, secret_matches
from relabel.service.worker import Worker

log = logging.getLogger("relabel.serve")

# Store reads happen on these threads, each with its own SQLite connection (a connection stays in its thread).
# Two, so a report being drawn never holds up a /setup, which Label Studio gives 3 s.
_READERS = 2


class _BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class _Readers:
    """A small thread pool whose threads each keep one Store open."""

    def __init__(self, store_path):
        self._path = store_path
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=_READERS, thread_name_prefix="relabel-reader")
        self._stores: list[Store] = []
        self._guard = threading.Lock()

    def _store(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = Store(self._path)
            with self._guard:
                self._stores.append(store)
        return store

    async def run(self, fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, lambda: fn(self._store(), *args, **kwargs))

    def close(self) -> None:
        def close_mine():
            store = getattr(self._local, "store", None)
            if store is not None:
                store.close()
                self._local.store = None
        for _ in range(_READERS):
            self._pool.submit(close_mine)
        self._pool.shutdown(wait=True)


def create_app(config: Config, worker: Worker, *, password: str, webhook_secret: str) -> Starlette:
    """The service's app over one config; ``worker`` is started and stopped with it."""
    settings = config.serve
    project_id = config.label_studio.project
    readers = _Readers(config.store_path)

    def authorised(request: Request) -> bool:
        if basic_auth_matches(request.headers.get("authorization"), settings.username, password):
            return True
        log.warning("refused %s %s from %s: missing or wrong basic auth", request.method, request.url.path,
                    _client(request))
        return False

    async def body_json(request: Request) -> dict:
        limit = settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _BadRequest(413, f"the request body is larger than {limit} bytes ([serve] max_body_bytes)")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise _BadRequest(413, f"the request body is larger than {limit} bytes ([serve] max_body_bytes)")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise _BadRequest(400, "the request body is not valid JSON") from None
        if not isinstance(payload, dict):
            raise _BadRequest(400, "the request body must be a JSON object")
        return payload

    def refused(request: Request, exc: _BadRequest) -> JSONResponse:
        log.warning("refused %s %s from %s: %s", request.method, request.url.path, _client(request), exc.message)
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    def authorised_json(handler):
        """An endpoint that needs basic auth and a JSON object body: ``handler(request, payload)``."""
        async def endpoint(request: Request) -> Response:
            if not authorised(request):
                return _unauthorised()
            try:
                payload = await body_json(request)
            except _BadRequest as exc:
                return refused(request, exc)
            return await handler(request, payload)
        return endpoint

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "UP", "model_class": "relabel"})

    @authorised_json
    async def setup(request: Request, payload: dict) -> Response:
        asked = project_of(payload)
        if asked is not None and asked != project_id:
            return JSONResponse({"error": f"this relabel serve is for project {project_id}, not {asked}; start "
                                          f"another one with a config for project {asked}"}, status_code=400)
        version = await readers.run(current_model_version)
        log.info("setup: project %s, model version %r", asked, version)
        return JSONResponse({"model_version": version})

    @authorised_json
    async def predict_endpoint(request: Request, payload: dict) -> Response:
        try:
            answer = await readers.run(predict, payload, project_id=project_id,
                                       label_tag=config.label_studio.label_tag)
        except ValueError as exc:
            return refused(request, _BadRequest(400, str(exc)))
        given = sum(1 for r in answer["results"] if r)
        log.info("predict: %d tasks, %d predictions (%s)", len(answer["results"]), given,
                 answer.get("model_version", "no round yet"))
        return JSONResponse(answer)

    async def webhook(request: Request) -> Response:
        if not secret_matches(request.headers.get(SECRET_HEADER), webhook_secret):
            # Never the payload: Label Studio's carry the project's tokens.
            log.warning("refused a webhook from %s: missing or wrong %s header", _client(request), SECRET_HEADER)
            return JSONResponse({"error": f"missing or wrong {SECRET_HEADER} header"}, status_code=401)
        try:
            payload = await body_json(request)
        except _BadRequest as exc:
            return refused(request, exc)
        event = event_of(payload)
        if event is None:
            log.debug("webhook %s ignored", str(payload.get("action"))[:40])
            return JSONResponse({"status": "ignored"})
        worker.submit(event)
        log.info("webhook %s (project %s) queued", event.action, event.project)
        return JSONResponse({"status": "queued"})

    async def report(request: Request) -> Response:
        if not authorised(request):
            return _unauthorised()
        from relabel.report.page import render_report  # matplotlib loads on the first page view, not at start-up

        def page(store: Store) -> str | None:
            return render_report(store, url=config.label_studio.url) if store.latest_round() else None
        html = await readers.run(page)
        if html is None:
            return HTMLResponse("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>relabel</title></head>"
                                "<body><p>No round has been scored yet; the first starts when the project has "
                                "annotations. <a href=\"status.json\">status.json</a></p></body></html>")
        return HTMLResponse(html)

    async def status(request: Request) -> Response:
        if not authorised(request):
            return _unauthorised()
        rounds = await readers.run(lambda store: Loop(store).status())
        return JSONResponse({**rounds, "project": project_id, "worker": worker.snapshot()})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        worker.start()
        log.info("relabel serve for project %s: worker started (trigger: %s)", project_id,
                 ", ".join(settings.trigger))
        try:
            yield
        finally:
            log.info("stopping: the worker finishes its current step first")
            worker.stop()
            readers.close()

    routes = [Route("/health", health, methods=["GET"]), Route("/setup", setup, methods=["POST"]),
              Route("/predict", predict_endpoint, methods=["POST"]), Route("/webhook", webhook, methods=["POST"]),
              Route("/", report, methods=["GET"]), Route("/status.json", status, methods=["GET"])]
    return Starlette(routes=routes, lifespan=lifespan)


def _unauthorised() -> Response:
    return JSONResponse({"error": "basic authentication required"}, status_code=401,
                        headers={"WWW-Authenticate": 'Basic realm="relabel"'})


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"
