"""Run the service: logging to stderr, uvicorn, registration once the server listens, SIGTERM.

uvicorn turns SIGTERM (and Ctrl-C) into a graceful shutdown: it stops accepting requests, finishes the ones in
flight, then the app's lifespan stops the worker after its current step. :class:`ServiceThread` runs the same
server in a thread of the calling process, for `relabel demo --serve` and the tests.
"""
from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time

from relabel.config import Config
from relabel.errors import ConfigError, ConnectorError, RelabelError
from relabel.loop.lock import writer_lock
from relabel.loop.project_setup import make_connector
from relabel.loop.store import Store
from relabel.service.app import create_app
from relabel.service.registration import Registration, register, unregister
from relabel.service.worker import Worker

log = logging.getLogger("relabel.serve")
_START_TIMEOUT_SECONDS = 30.0
_POLL_SECONDS = 0.05
# --register waits this long for a CLI command that is writing to the store.
_REGISTER_LOCK_WAIT = 60.0


def setup_logging(verbose: int = 0) -> None:
    """One line per event on stderr; -v adds requests and tracebacks."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.set_name("relabel-serve")
    ours = logging.getLogger("relabel")
    # Calling it twice (the demo, then the tests) must not print every line twice.
    ours.handlers[:] = [h for h in ours.handlers if h.get_name() != "relabel-serve"] + [handler]
    ours.setLevel(logging.DEBUG if verbose else logging.INFO)


def with_address(config: Config, host: str | None = None, port: int | None = None) -> Config:
    """The config with --host/--port applied over [serve]."""
    changes = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    return dataclasses.replace(config, serve=dataclasses.replace(config.serve, **changes)) if changes else config


def build_server(config: Config, verbose: int = 0, *, register_first: bool = False):
    """A uvicorn Server for the app over ``config``, and its worker (secrets are read now: a missing one fails
    before anything listens). ``register_first``: once the server listens, connect the project (Label Studio
    calls /health and /setup while it adds the ML backend) and only then let the worker start."""
    import uvicorn

    password, secret = config.serve_password(), config.webhook_secret()
    with Store(config.store_path) as store:     # a store of another project fails now, not in the worker
        store.check_project(config.label_studio.project)
    ready = threading.Event() if register_first else None
    worker = Worker(config, ready=ready)
    app = create_app(config, worker, password=password, webhook_secret=secret)
    uv = uvicorn.Config(app, host=config.serve.host, port=config.serve.port, lifespan="on",
                        log_level="info" if verbose else "warning", access_log=bool(verbose),
                        log_config=None)
    server = uvicorn.Server(uv)
    server.registration_errors = []
    if register_first:
        threading.Thread(target=_register_when_listening, args=(server, config, ready), daemon=True,
                         name="relabel-register").start()
    return server, worker


def register_service(config: Config) -> Registration:
    """--register: webhooks and the ML backend connection for the service at ``config.serve.public_url``."""
    connector = make_connector(config)
    with Store(config.store_path) as store, writer_lock(store, "serve --register", wait=_REGISTER_LOCK_WAIT):
        # Under the writer lock: it may create the review project, which a CLI push must not do at the same time.
        store.check_project(config.label_studio.project)
        done = register(connector, store, service_url=config.serve.public_url, username=config.serve.username,
                        password=config.serve_password(), secret=config.webhook_secret(),
                        review_mode=config.review.mode, show_suggestion=config.review.show_suggestion,
                        prefill_annotators=config.serve.prefill_annotators)
    log.info("registered %s with projects %s: webhooks %d created, %d updated, %d kept; ML backend %s",
             config.serve.public_url, ", ".join(map(str, done.projects)), done.webhooks_created,
             done.webhooks_updated, done.webhooks_kept, done.ml_backend)
    return done


def unregister_service(config: Config) -> Registration:
    """--unregister: remove the webhooks and the ML backend connection."""
    connector = make_connector(config)
    with Store(config.store_path) as store:
        return unregister(connector, store, service_url=config.serve.public_url)


def serve(config: Config, *, register_first: bool = False, verbose: int = 0) -> int:
    """`relabel serve`: run until SIGTERM or Ctrl-C (exit 0, one goodbye line); returns the exit code. A port in
    use fails with one line before "listening" is printed."""
    check_port_free(config.serve.host, config.serve.port)
    server, _ = build_server(config, verbose, register_first=register_first)
    log.info("listening on http://%s:%d (Label Studio reaches it at %s)", config.serve.host, config.serve.port,
             config.serve.public_url)
    try:
        server.run()
    except KeyboardInterrupt:          # a second Ctrl-C during the graceful shutdown
        pass
    if server.registration_errors or not server.started:
        return 1
    print("relabel serve stopped; goodbye.", file=sys.stderr, flush=True)
    return 0


def check_port_free(host: str, port: int) -> None:
    """Raise ConfigError in one line if ``host:port`` cannot be bound (in use, or not an address of this host)."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as uvicorn binds: TIME_WAIT is not "in use"
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"Port {port} on {host} is in use (another relabel serve?); stop that process or "
                                  "choose another port with --port or [serve] port.") from None
            raise ConfigError(f"relabel serve cannot listen on {host}:{port} ({exc.strerror}); fix [serve] host "
                              "or --host.") from None


def _register_when_listening(server, config: Config, ready: threading.Event) -> None:
    while not server.started and not server.should_exit:
        time.sleep(_POLL_SECONDS)
    if server.should_exit:
        return
    try:
        register_service(config)
    except RelabelError as exc:
        server.registration_errors.append(str(exc))
        log.error("registration failed: %s", " ".join(str(exc).split()))
        server.should_exit = True
        return
    ready.set()


class ServiceThread:
    """The service in a thread of this process: ``with ServiceThread(config) as service: ...``."""

    def __init__(self, config: Config, *, verbose: int = 0, register_first: bool = False):
        self.config = config
        self.server, self.worker = build_server(config, verbose, register_first=register_first)
        self._thread = threading.Thread(target=self.server.run, name="relabel-serve", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.config.serve.host}:{self.config.serve.port}"

    def start(self) -> "ServiceThread":
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConnectorError(f"relabel serve did not start on {self.url} within "
                                     f"{_START_TIMEOUT_SECONDS:.0f} s; is the port taken?")
            time.sleep(_POLL_SECONDS)
        return self

    def wait_registered(self, timeout: float = 120.0) -> None:
        """Wait until --register connected the project (raises ConnectorError with the cause if it failed)."""
        deadline = time.monotonic() + timeout
        while self.worker.snapshot()["state"] in ("starting", "waiting for registration"):
            if self.server.registration_errors:
                raise ConnectorError(f"relabel serve could not register: {self.server.registration_errors[0]}")
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise ConnectorError(f"relabel serve did not register within {timeout:.0f} s; read its log.")
            time.sleep(_POLL_SECONDS)

    def stop(self, timeout: float = 120.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> "ServiceThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
