"""A private Label Studio server on 127.0.0.1, for the test suite and `relabel demo`.

The server keeps everything (SQLite database, secret key, media, exports and even the files Label Studio insists
on writing under the home directory) inside one data directory, listens only on the loopback interface, and
talks to nobody: no Sentry, no analytics, no version check. The first start on an empty directory runs every
migration (30-70 s); later starts on the same directory take seconds, so callers initialise once and reuse.
"""
from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from relabel.about import DISTRIBUTION
from relabel.errors import ConfigError, ConnectorError

# How often to poll /health while the server boots, and how long one poll may take.
_HEALTH_POLL_SECONDS = 0.5
_HEALTH_REQUEST_TIMEOUT = 5.0
# SIGTERM stops the dev server in ~1.5 s; give it generous slack before SIGKILL.
_STOP_GRACE_SECONDS = 15.0
# The legacy token Label Studio accepts is 40 hex characters, like a Django REST framework token.
_TOKEN_BYTES = 20
_TOKEN_FILE = "relabel_admin_token"
_HEALTHY = {"status": "UP"}


@dataclass
class LabelStudioServer:
    """A running private Label Studio. Use as a context manager, or call :meth:`stop`."""

    url: str
    port: int
    api_key: str
    username: str
    password: str
    process: subprocess.Popen
    data_dir: Path
    log_path: Path
    _log_file: object = field(default=None, repr=False)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL if it hangs) and close its log."""
        if self.process.poll() is None:
            # The server runs in its own process group so that its children stop with it.
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout=_STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(self.process, signal.SIGKILL)
                self.process.wait(timeout=_STOP_GRACE_SECONDS)
        if self._log_file is not None and not self._log_file.closed:
            self._log_file.close()

    def __enter__(self) -> "LabelStudioServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:  # never print the key or the password
        return f"LabelStudioServer(url={self.url!r}, username={self.username!r}, data_dir={str(self.data_dir)!r})"


def label_studio_executable() -> Path:
    """The `label-studio` command installed next to this Python (the `server` extra)."""
    exe = Path(sys.executable).parent / "label-studio"
    if not exe.exists():
        raise ConfigError(
            f"The label-studio command is not installed next to {sys.executable}; "
            f"install the server extra with `pip install '{DISTRIBUTION}[server]'`."
        )
    return exe


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As Label Studio's own server does: connections of a stopped server lingering in TIME_WAIT do not make the
        # port busy (a restart on the same port would be refused for a minute), a listening socket still does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _server_env(data_dir: Path, username: str, password: str, token: str, ssrf_protection: bool = True) -> dict:
    home = data_dir / "home"
    env = dict(os.environ)
    env.update({
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": username,
        "LABEL_STUDIO_PASSWORD": password,
        "LABEL_STUDIO_USER_TOKEN": token,
        # Read only when the organisation is created, i.e. on the first start of an empty data dir.
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "COLLECT_ANALYTICS": "false",
        "LATEST_VERSION_CHECK": "false",
        # Label Studio writes ~/.config/label-studio/user_id whatever the data dir; keep it inside ours.
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    })
    if not ssrf_protection:
        # Webhooks and ML backends on 127.0.0.1 (relabel serve next to a private server) are refused as "reserved
        # network addresses" otherwise: SSRF_PROTECTION_ENABLED guards webhooks, ML_BLOCK_LOCAL_IP ML backends.
        env.update({"SSRF_PROTECTION_ENABLED": "false", "ML_BLOCK_LOCAL_IP": "false"})
    return env


def private_dir(path) -> Path:
    """Create ``path`` (and its parents) and make it 0700, also when it already existed.

    Label Studio's database holds every user's API token and writes its files 0644 under the usual umask: the
    folder around it is what keeps other users of the machine out.
    """
    path = Path(path).resolve()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def _read_or_make_token(data_dir: Path, token: str | None) -> str:
    """The admin's legacy token: the one given, else the one this data dir was initialised with, else a new one.

    The token only takes effect on the first start (Label Studio creates the user then), so a second start on
    the same data dir must reuse the first token, which is why it is kept in a file readable only by us.
    """
    path = data_dir / _TOKEN_FILE
    if path.exists():
        stored = path.read_text().strip()
        if token is not None and token != stored:
            raise ConfigError(
                f"The data dir {data_dir} was initialised with another admin token; "
                f"pass token=None to reuse it or start from an empty data dir."
            )
        return stored
    if token is None:
        token = secrets.token_hex(_TOKEN_BYTES)
    if not re.fullmatch(r"[0-9a-f]{40}", token):
        raise ConfigError("The Label Studio admin token must be 40 lowercase hex characters; leave it None to generate one.")
    path.write_text(token)
    path.chmod(0o600)
    return token


def start_label_studio(data_dir, *, port: int | None = None, username: str, password: str,
                       token: str | None = None, log_path=None, timeout: float = 180,
                       ssrf_protection: bool = True) -> LabelStudioServer:
    """Start Label Studio on 127.0.0.1 with its data in ``data_dir`` and wait until it answers /health.

    ``token`` is the admin's legacy API token (40 hex chars, generated when None and remembered in the data
    dir). ``ssrf_protection=False`` lets this server call webhooks and ML backends on 127.0.0.1 (`relabel serve`
    beside a private server: the tests and ``relabel demo --serve``); leave it on for anything else.
    Returns a handle whose ``api_key`` works with the SDK; call ``.stop()`` or use it in a ``with``.
    Raises ConnectorError when the server dies or does not come up within ``timeout`` seconds.
    """
    data_dir = private_dir(data_dir)
    (data_dir / "home").mkdir(exist_ok=True)
    token = _read_or_make_token(data_dir, token)
    if port is None:
        port = free_port()
    elif not _port_is_free(port):
        # Label Studio would silently move to port+1 and we would talk to whatever holds this port.
        raise ConfigError(f"Port {port} on 127.0.0.1 is already in use; choose another port or leave it None.")
    log_path = Path(log_path) if log_path is not None else data_dir / "label_studio.log"
    log_file = open(log_path, "ab")
    cmd = [str(label_studio_executable()), "start", "--no-browser", "--internal-host", "127.0.0.1",
           "--port", str(port), "--data-dir", str(data_dir)]
    # The admin's email, password and token go through the environment, not argv, which `ps` shows to everyone.
    process = subprocess.Popen(cmd, env=_server_env(data_dir, username, password, token, ssrf_protection), cwd=data_dir,
                               stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    server = LabelStudioServer(url=f"http://127.0.0.1:{port}", port=port, api_key=token, username=username,
                               password=password, process=process, data_dir=data_dir, log_path=log_path,
                               _log_file=log_file)
    try:
        _wait_until_healthy(server, timeout)
        _confirm_port_is_ours(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_until_healthy(server: LabelStudioServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=_HEALTH_REQUEST_TIMEOUT) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise ConnectorError(
                    f"Label Studio exited with code {server.process.returncode} while starting; "
                    f"read {server.log_path} for the cause."
                )
            try:
                response = client.get(f"{server.url}/health")
                if response.status_code == 200 and response.json() == _HEALTHY:
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(_HEALTH_POLL_SECONDS)
    raise ConnectorError(
        f"Label Studio did not answer {server.url}/health within {timeout:.0f} s; "
        f"read {server.log_path} or raise the timeout."
    )


def _confirm_port_is_ours(server: LabelStudioServer) -> None:
    """Check that our process holds the port: a server that moved to port+1 would leave someone else's answering."""
    pid = server.process.pid
    inode_of_port = _listening_inodes(server.port)
    if not inode_of_port:
        return  # no /proc/net (not Linux): /health answered on our port and the port was free before we started
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inode_of_port:
            return
    # The dev server may accept in a child process; check the whole process group.
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.getpgid(int(proc.name)) != pid:
                continue
            for fd in (proc / "fd").glob("*"):
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inode_of_port:
                    return
        except OSError:
            continue
    raise ConnectorError(
        f"Port {server.port} answered /health but is not held by the Label Studio we started (pid {pid}); "
        f"pick another port."
    )


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on 127.0.0.1:port, from /proc/net/tcp (state 0A = LISTEN)."""
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return set()
    want = f"0100007F:{port:04X}"
    return {cols[9] for cols in (line.split() for line in lines) if cols[1] == want and cols[3] == "0A"}


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def _form_session(url: str) -> httpx.Client:
    # A browser-like session: Django's forms need the csrftoken cookie and a Referer on the same origin.
    return httpx.Client(base_url=url, timeout=60, follow_redirects=False,
                        limits=httpx.Limits(max_keepalive_connections=0), headers={"Referer": url + "/"})


def _post_form(session: httpx.Client, path: str, fields: dict) -> httpx.Response:
    session.get(path)  # sets the csrftoken cookie
    csrf = session.cookies.get("csrftoken")
    if not csrf:
        raise ConnectorError(f"Label Studio at {session.base_url} set no CSRF cookie on {path}; is it Label Studio?")
    return session.post(path, data={**fields, "csrfmiddlewaretoken": csrf})


def create_user(server: LabelStudioServer, email: str, password: str) -> int:
    """Sign a user up through the web form (a user who can log in, unlike an API-created member); return its id.

    The form logs the new user in; the id is then read from /api/current-user/whoami in that session.
    """
    with _form_session(server.url) as session:
        response = _post_form(session, "/user/signup/", {"email": email, "password": password})
        if response.status_code != 302:
            raise ConnectorError(
                f"Label Studio refused to sign up {email} (HTTP {response.status_code}); the email may be taken "
                f"or the password too short (8+ characters)."
            )
        whoami = session.get("/api/current-user/whoami", headers={"X-CSRFToken": session.cookies.get("csrftoken")})
        whoami.raise_for_status()
        return int(whoami.json()["id"])


def create_member(client, email: str) -> int:
    """A user created through the API (`client` is a label_studio_sdk.LabelStudio with an admin key).

    Cheaper than :func:`create_user`, and enough as the owner of imported annotations, but it cannot log in.
    """
    return int(client.users.create(email=email, username=email.split("@")[0]).id)


def create_personal_access_token(url: str, email: str, password: str) -> str:
    """Log in through the form and create the user's personal access token (a JWT refresh token).

    A user has at most one: Label Studio answers 409 to a second create, so this raises then.
    """
    with _form_session(url) as session:
        response = _post_form(session, "/user/login/", {"email": email, "password": password})
        if response.status_code != 302:
            raise ConnectorError(f"Label Studio did not log {email} in at {url} (HTTP {response.status_code}); "
                                 f"check the email and password.")
        token = session.post("/api/token/", headers={"X-CSRFToken": session.cookies.get("csrftoken")})
        if token.status_code == 409:
            raise ConnectorError(f"{email} already has a personal access token at {url}; revoke it in Account & "
                                 f"Settings to create another.")
        if token.status_code >= 400:
            raise ConnectorError(f"Label Studio at {url} refused to create a token for {email} "
                                 f"(HTTP {token.status_code}); check that personal access tokens are enabled.")
        return token.json()["token"]
