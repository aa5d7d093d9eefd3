"""The sandbox server process: moto's API on loopback plus the data plane.

Run by ``handson sandbox start`` as ``python -m handson.sandbox.server``; not meant to
be started by hand. Besides the AWS APIs it answers a few ``/_handson/...`` paths used by
the lifecycle commands (status, reset, shutdown, fault injection).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import random
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

# AWS managed policies (AmazonECSTaskExecutionRolePolicy, ...) exist only with this set,
# and it must be set before moto's IAM backend loads.
os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
# No public AMIs: the course runs no EC2 instance, and moto otherwise builds hundreds of
# AMIs, each with its EBS snapshot, for every region of every account (a sixth of the
# server's CPU while a class of 30 is provisioned). DescribeImages answers an empty list.
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")

from werkzeug.serving import WSGIRequestHandler, make_server  # noqa: E402

from handson.awscli import is_mutating  # noqa: E402
from handson.sandbox.config import LOOPBACK_MODES  # noqa: E402
from handson.sandbox.dataplane import moto_bridge  # noqa: E402
from handson.sandbox.dataplane.engine import DataPlane  # noqa: E402
from handson.sandbox.dataplane.moto_bridge import hooks as moto_hooks  # noqa: E402

log = logging.getLogger("handson.sandbox")

StartResponse = Callable[..., Any]
# Protocols by signing name: JSON services answer errors as JSON, the others as XML.
JSON_SERVICES = {"ecs", "logs", "ecr", "secretsmanager"}


class QuietHandler(WSGIRequestHandler):
    """No per-request access log on stderr (it would leak into notebook outputs)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


class Faults:
    """Fault injection for tests: make a share of API calls fail with throttling."""

    def __init__(self) -> None:
        self.rate = float(os.environ.get("HANDSON_SANDBOX_THROTTLE", "0") or 0)
        self.services: set[str] = set()
        self.random = random.Random(0)
        self.injected = 0

    def configure(self, settings: dict[str, Any]) -> None:
        self.rate = float(settings.get("throttle_rate", 0))
        self.services = set(settings.get("services") or [])
        self.random = random.Random(int(settings.get("seed", 0)))
        self.injected = 0

    def should_throttle(self, service: str | None) -> bool:
        if not self.rate or service is None or service == "sts":
            return False
        if self.services and service not in self.services:
            return False
        return self.random.random() < self.rate

    @staticmethod
    def response(service: str) -> tuple[str, list[tuple[str, str]], bytes]:
        """A throttling answer in the service's protocol (docs/sandbox.md, "API throttling")."""
        if service in JSON_SERVICES:
            body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"})
            headers = [
                ("Content-Type", "application/x-amz-json-1.1"),
                ("x-amzn-ErrorType", "ThrottlingException"),
            ]
            return "400 Bad Request", headers, body.encode()
        body = (
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
            "<Message>Rate exceeded</Message></Error><RequestId>"
            "00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
        )
        return "400 Bad Request", [("Content-Type", "text/xml")], body.encode()


def _credential_scope(environ: dict[str, Any]) -> list[str]:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    try:
        return auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")
    except IndexError:
        return []


def signing_service(environ: dict[str, Any]) -> str | None:
    """The service named in a SigV4 Authorization header's credential scope."""
    scope = _credential_scope(environ)
    return scope[3] if len(scope) > 3 else None


def operation_name(environ: dict[str, Any]) -> str | None:
    """The API operation of a request: X-Amz-Target (JSON) or Action= (query protocols).

    Reading a form body consumes it, so it is put back for moto.
    """
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target).rsplit(".", 1)[-1]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in query:
        return query["Action"][0]
    if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        form = parse_qs(body.decode("utf-8", "replace"))
        if "Action" in form:
            return form["Action"][0]
    return None


class CallCounter:
    """Successful mutating API calls per account, to prove that a re-run changes nothing."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()

    def record(self, environ: dict[str, Any], operation: str | None, status: str) -> None:
        scope = _credential_scope(environ)
        if len(scope) < 4 or scope[3] == "sts" or operation is None:
            return
        if not status.startswith("2") or not is_mutating(operation):
            return
        account = moto_bridge.account_of(scope[0])
        with self._lock:
            per_account = self.counts.setdefault(account, {})
            key = f"{scope[3]}:{operation}"
            per_account[key] = per_account.get(key, 0) + 1


class SandboxApp:
    """WSGI front: our control paths, fault injection, and the data plane's lock."""

    def __init__(
        self, moto_app: Callable[..., Any], plane: DataPlane, shutdown: Callable[[], None]
    ) -> None:
        self.moto_app = moto_app
        self.plane = plane
        self.shutdown = shutdown
        self.faults = Faults()
        self.calls = CallCounter()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_handson/"):
            return self._control(path, environ, start_response)
        if path == "/moto-api/reset" and environ.get("REQUEST_METHOD") == "POST":
            self.plane.reset()
        operation = operation_name(environ)  # buffers a form body before moto reads it
        service = signing_service(environ)
        if self.faults.should_throttle(service):
            self.faults.injected += 1
            status, headers, body = Faults.response(service or "")
            start_response(status, headers)
            return [body]
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        # The whole answer is produced under the lock, so it reflects one consistent state.
        with self.plane.lock:
            result = self.moto_app(environ, capture)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        self.calls.record(environ, operation, captured["status"])
        start_response(captured["status"], captured["headers"])
        return [body]

    def _control(
        self, path: str, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        payload: dict[str, Any] = {"status": "ok"}
        if path == "/_handson/status":
            payload = {"status": "running", "pid": os.getpid(), **self.plane.summary()}
            payload["alb_proxy"] = self.plane.proxy.url
            payload["throttle_rate"] = self.faults.rate
            payload["throttled"] = self.faults.injected
        elif path == "/_handson/calls":
            account = parse_qs(environ.get("QUERY_STRING", "")).get("account", [""])[0]
            payload = {"account": account, "mutating_calls": self.calls.counts.get(account, {})}
        elif path == "/_handson/reset" and method == "POST":
            self.plane.reset()
            moto_bridge.reset()
        elif path == "/_handson/faults" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            self.faults.configure(json.loads(environ["wsgi.input"].read(length) or b"{}"))
        elif path == "/_handson/shutdown" and method == "POST":
            threading.Thread(target=self.shutdown, daemon=True).start()
        else:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [json.dumps({"error": f"unknown sandbox path {path}"}).encode()]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(payload, default=str).encode()]


def serve(
    *,
    port: int,
    alb_port: int,
    speed: float,
    control_speed: float,
    state_dir: Path,
    sandbox_id: str,
    seed: int | None,
    loopback: str = "auto",
) -> None:
    """Run the sandbox until SIGTERM, SIGINT or POST /_handson/shutdown."""
    if seed is not None:
        moto_bridge.seed(seed)
    plane = DataPlane(
        state_dir=state_dir,
        speed=speed,
        control_speed=control_speed,
        sandbox_id=sandbox_id,
        alb_port=alb_port,
        loopback=loopback,
    )
    done = threading.Event()
    holder: dict[str, Any] = {}

    def shutdown() -> None:
        if not done.is_set():
            done.set()
            holder["server"].shutdown()

    app = SandboxApp(moto_bridge.wsgi_app(), plane, shutdown)
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=QuietHandler)
    holder["server"] = server
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: threading.Thread(target=shutdown, daemon=True).start())
    # moto's hooked operations call this data plane from now on (installed before the
    # server serves, as the hooks expect).
    moto_hooks.install(plane)
    plane.start()
    log.info(
        "sandbox listening on http://127.0.0.1:%d (ALBs on port %d, loopback mode %s)",
        port,
        alb_port,
        plane.loopback.mode,
    )
    try:
        server.serve_forever()
    finally:
        plane.stop()
        server.server_close()
        log.info("sandbox stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m handson.sandbox.server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--alb-port", type=int, required=True)
    parser.add_argument("--speed", type=float, required=True)
    parser.add_argument("--control-speed", type=float, required=True)
    parser.add_argument("--loopback", choices=LOOPBACK_MODES, default="auto")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--sandbox-id", required=True)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    serve(
        port=args.port,
        alb_port=args.alb_port,
        speed=args.speed,
        control_speed=args.control_speed,
        state_dir=args.state_dir,
        sandbox_id=args.sandbox_id,
        seed=args.seed,
        loopback=args.loopback,
    )


if __name__ == "__main__":
    main()
