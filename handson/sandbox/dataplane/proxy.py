"""The ALB data path on loopback: a small threaded HTTP/1.1 reverse proxy.

moto creates load balancers whose DNS names resolve nowhere (docs/sandbox.md, "Tooling:
what moto, papermill, nbval and pgserver do"). The EdgeProxy answers for those names on
127.0.0.1 and forwards each request to a target the data plane picks, behaving like an
Application Load Balancer on the wire: the same X-Forwarded-* and X-Amzn-Trace-Id headers,
and the same 502/503/504 pages with ``Server: awselb/2.0``. Clients reach it in two ways:

* as an HTTP forward proxy: ``curl --proxy http://127.0.0.1:PORT http://<alb-dns>/health``
  (absolute-URI request lines);
* directly, naming the load balancer in the Host header:
  ``curl -H "Host: <alb-dns>" http://127.0.0.1:PORT/health``.

ALB behaviour comes from the archived ALB User Guide (docs/sandbox.md, "The ALB on the wire"):
``load-balancer-troubleshooting.md`` (which errors mean what), ``x-forwarded-headers.md``,
``load-balancer-request-tracing.md``; target choice and health live in the data plane
(docs/sandbox.md, "ALB target health"). Standard library only; access logs go to this
module's logger at DEBUG, never to stdout/stderr.
"""

from __future__ import annotations

import http.client
import logging
import secrets
import select
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

__all__ = ["EdgeProxy", "Route", "Target"]

logger = logging.getLogger(__name__)

Target = tuple[str, int]

# ALB idle timeout default (attribute idle_timeout.timeout_seconds) and its fixed 10 s
# connection timeout to targets (load-balancer-troubleshooting.md, "HTTP 504").
DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 10.0
# A client whose SYN the ALB's security group drops retries until its own connect timeout
# (about 130 s for Linux's default SYN retries); the proxy holds such a connection
# unanswered at most this long, and less when the client gives up first.
DEFAULT_HOLD = 130.0
_CHUNK = 64 * 1024
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Request headers the proxy sets itself rather than passing through.
_REPLACED = frozenset(
    {"host", "content-length", "expect", "x-forwarded-for", "x-forwarded-proto",
     "x-forwarded-port", "x-amzn-trace-id"}
)  # fmt: skip
# Status lines exactly as an ALB writes them (nginx-style reason phrases).
_ALB_REASONS = {
    400: "Bad Request",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
    505: "HTTP Version Not Supported",
}


def _ignore_report(target: Target, ok: bool) -> None:
    """Default Route.report: no passive accounting."""


def _always_reachable(target: Target) -> bool:
    """Default Route.reachable: no network rules between the ALB and its targets."""
    return True


def _direct(target: Target) -> Target:
    """Default Route.dial: connect to the target's own address and port."""
    return target


@dataclass(frozen=True)
class Route:
    """How to forward traffic for one load balancer listener, as the data plane sees it.

    ``pick()`` returns the next target address, or None when the target groups have no
    registered (or routable) targets, which makes the proxy answer 503 as an ALB does.
    Choosing among healthy targets, and failing open to all targets when none is healthy
    (docs/sandbox.md, "ALB target health"), is the data plane's job. ``report(target, ok)``
    is called once per forwarded request: ok is False for a connection failure, timeout or
    invalid response.
    Both are called from many handler threads at once, so they must be thread-safe.

    Network rules: when ``admitted`` is False (the ALB's security group or its subnet's
    network ACL drops the client) the client gets no answer at all: the proxy reads the
    request, then holds the connection silent until the client gives up or
    ``hold_seconds`` pass, and closes it, so the client sees its own timeout (curl
    ``--max-time``, urllib's ``timeout``), never an HTTP status. When
    ``reachable(target)`` is False (the target's rules drop the ALB) the connection to the
    target times out after ``unreachable_wait`` seconds and the client gets a 504, as
    from an ALB whose connection to the target timed out.

    ``dial(target)`` is where the proxy opens the TCP connection to a target: the target
    itself unless the data plane puts it elsewhere (single-address loopback mode).
    """

    pick: Callable[[], Target | None]
    report: Callable[[Target, bool], None] = _ignore_report
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    admitted: bool = True
    hold_seconds: float = DEFAULT_HOLD
    reachable: Callable[[Target], bool] = _always_reachable
    unreachable_wait: float = DEFAULT_CONNECT_TIMEOUT
    dial: Callable[[Target], Target] = _direct


RouteLookup = Callable[[str, int], Route | None]


class _ClientError(Exception):
    """The client sent something unusable or went away; nothing to blame on a target."""


def _alb_page(code: int, reason: str) -> bytes:
    """The HTML body an ALB sends with the errors it generates itself."""
    title = f"{code} {reason}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    ).encode("ascii")


def _trace_id() -> str:
    # X-Ray format: version 1, epoch seconds as 8 hex digits, 96 random bits as 24 hex.
    return f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"


def _trace_header(existing: str | None) -> str:
    """X-Amzn-Trace-Id as an ALB forwards it (load-balancer-request-tracing.md): a new Root,
    or, when the client already sent a Root, a new Self field in front of its fields."""
    if not existing or "root=" not in existing.lower():
        return f"Root={_trace_id()}" + (f";{existing}" if existing else "")
    fields = [f for f in existing.split(";") if not f.strip().lower().startswith("self=")]
    return ";".join([f"Self={_trace_id()}", *fields])


class _EdgeServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks live sockets and threads so stop() can end them."""

    daemon_threads = True
    request_queue_size = 128  # many students' notebooks may hit one ALB at once

    def __init__(self, address: tuple[str, int], route: RouteLookup) -> None:
        self.route = route
        self._live_lock = threading.Lock()
        self._live_sockets: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()
        self._closing = False
        super().__init__(address, _ProxyHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can stall.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        self.track(request)
        with self._live_lock:
            self._workers.add(threading.current_thread())
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.untrack(request)
            with self._live_lock:
                self._workers.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr, which would land in notebook output.
        logger.debug("edge proxy: error serving %s", client_address, exc_info=True)

    def track(self, sock: socket.socket) -> None:
        """Remember a socket (client or target side) that stop() must break off."""
        with self._live_lock:
            self._live_sockets.add(sock)
            closing = self._closing
        if closing:
            _shutdown(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self._live_lock:
            self._live_sockets.discard(sock)

    def break_connections(self) -> None:
        """Shut down every live socket so blocked handler threads return promptly."""
        with self._live_lock:
            self._closing = True
            sockets = list(self._live_sockets)
        for sock in sockets:
            _shutdown(sock)

    def join_workers(self, deadline: float) -> None:
        with self._live_lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))


def _report(route: Route, target: Target, ok: bool) -> None:
    try:
        route.report(target, ok)
    except Exception:
        # The data plane's bookkeeping failing must not fail the request it describes.
        logger.warning("edge proxy: report(%s, %s) failed", target, ok, exc_info=True)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed or never connected


class _ProxyHandler(BaseHTTPRequestHandler):
    """One client connection; each request on it is forwarded to a picked target."""

    protocol_version = "HTTP/1.1"  # keep-alive to clients
    timeout = DEFAULT_IDLE_TIMEOUT  # client idle timeout, like the ALB's default
    server: _EdgeServer
    _close_after = False  # close the client connection after this response

    # -- plumbing -----------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("edge proxy %s: " + format, self.address_string(), *args)

    def __getattr__(self, name: str) -> Callable[[], None]:
        # BaseHTTPRequestHandler dispatches to do_<METHOD>; an ALB forwards any method.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def do_CONNECT(self) -> None:
        self._close_after = True
        self._send_text(501, "The sandbox load balancers listen on plain HTTP; use http:// URLs.")

    def do_TRACE(self) -> None:
        # ALBs refuse TRACE (load-balancer-troubleshooting.md, "HTTP 405").
        self._close_after = self._has_body()
        self._send_alb_error(405)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Parse errors from http.server, answered with ALB pages; an ALB reports oversize
        request lines and headers as 400 (load-balancer-troubleshooting.md, "HTTP 400")."""
        logger.debug("edge proxy: rejecting request: %s %s", code, message)
        if self.request_version == "HTTP/0.9":
            # http.server writes no status line or headers for HTTP/0.9; an ALB always does.
            self.request_version = "HTTP/1.1"
        self.close_connection = True
        self._close_after = True
        self._send_alb_error(400 if code in (414, 431) else code)

    # -- request handling ---------------------------------------------------------------

    def _handle(self) -> None:
        self._close_after = False
        try:
            if self.request_version == "HTTP/0.9":  # "GET /" with no version: not for an ALB
                self.send_error(400)
            else:
                self._forward()
        except _ClientError as exc:
            logger.debug("edge proxy: client %s: %s", self.address_string(), exc)
            self.close_connection = True
        if self._close_after:
            self.close_connection = True

    def _has_body(self) -> bool:
        return bool(self.headers.get("Transfer-Encoding")) or self.headers.get(
            "Content-Length", "0"
        ).strip() not in ("", "0")

    def _forward(self) -> None:
        # An error answered before the body is read leaves it unread: close afterwards.
        self._close_after = self._has_body()
        destination = self._destination()
        if destination is None:
            return
        hostname, port, path, host_header = destination
        framing = self._request_framing()
        if framing is None:
            return

        try:
            route = self.server.route(hostname, port)
            target = route.pick() if route is not None else None
        except Exception:
            # A bug in the data plane's callbacks, not a learner's mistake: keep the traceback.
            logger.warning(
                "edge proxy: route lookup failed for %s:%s", hostname, port, exc_info=True
            )
            self._send_alb_error(500)
            return
        if route is None:
            # Like a failed DNS lookup: there is no such load balancer to answer at all.
            self._send_text(
                404,
                f"Could not resolve host {hostname}: no load balancer in the sandbox has this "
                f"DNS name with a listener on port {port}. Use the DNS name from "
                "describe_load_balancers, with this proxy as the HTTP proxy or in the Host header.",
            )
            return
        if not route.admitted:
            self._hold_silently(route.hold_seconds)
            return
        if target is None:
            # No registered targets: the ALB answers 503 itself (troubleshooting, "HTTP 503").
            self._send_alb_error(503)
            return

        conn = http.client.HTTPConnection(*route.dial(target), timeout=route.connect_timeout)
        try:
            self._exchange(conn, route, target, path, host_header, port, framing)
        finally:
            if conn.sock is not None:
                self.server.untrack(conn.sock)
            conn.close()

    def _hold_silently(self, seconds: float) -> None:
        """Answer nothing, as a load balancer whose security group drops the client: wait
        until the client closes the connection (or the server stops) or ``seconds`` pass,
        then close it without a response."""
        logger.debug("edge proxy: %s dropped by the network rules", self.address_string())
        self._close_after = True
        self.close_connection = True
        sock = self.connection
        deadline = time.monotonic() + seconds
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                readable, _, _ = select.select([sock], [], [], min(remaining, 0.5))
                if readable and not sock.recv(_CHUNK):
                    return  # the client gave up
        except OSError:
            return

    def _destination(self) -> tuple[str, int, str, str] | None:
        """(hostname, listener port, origin-form path, Host header) of this request."""
        raw = self.path
        if raw[:7].lower() == "http://" or raw[:8].lower() == "https://":
            parts = urlsplit(raw)  # forward-proxy mode: absolute-URI request line
            if parts.scheme.lower() != "http":
                self._close_after = True
                self._send_text(501, "The sandbox load balancers listen on plain HTTP only.")
                return None
            authority = parts.netloc.rpartition("@")[2]
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        elif raw.startswith("/") or raw == "*":
            authority = self.headers.get("Host", "").strip()
            path = raw
        else:
            self._close_after = True
            self._send_alb_error(400)
            return None
        try:
            parsed = urlsplit(f"//{authority}")
            hostname, port = parsed.hostname, parsed.port or 80
        except ValueError:
            hostname = None
        if not hostname:
            # HTTP/1.1 requires Host; without it there is no load balancer to pick.
            self._close_after = True
            self._send_alb_error(400)
            return None
        return hostname.rstrip(".").lower(), port, path, authority

    def _request_framing(self) -> tuple[str, int] | None:
        """("chunked", 0) or ("length", n) for the request body; None after an error."""
        codings = [
            c.strip().lower()
            for value in self.headers.get_all("Transfer-Encoding") or []
            for c in value.split(",")
            if c.strip()
        ]
        codings = [c for c in codings if c != "identity"]
        if codings == ["chunked"]:
            return "chunked", 0
        if codings:
            # ALBs support only chunked and identity (troubleshooting, "HTTP 501").
            self._close_after = True
            self._send_alb_error(501)
            return None
        lengths = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if not lengths:
            return "length", 0
        if len(lengths) == 1 and (value := lengths.pop()).isdigit():
            return "length", int(value)
        self._close_after = True
        self._send_alb_error(400)
        return None

    def _upstream_headers(self, host_header: str, port: int) -> list[tuple[str, str]]:
        connection_tokens = {
            token.strip().lower()
            for value in self.headers.get_all("Connection") or []
            for token in value.split(",")
        }
        headers = [("Host", host_header)]
        for name, value in self.headers.items():
            lowered = name.lower()
            if lowered in _HOP_BY_HOP or lowered in _REPLACED or lowered in connection_tokens:
                continue
            headers.append((name, value))
        # x-forwarded-headers.md: append the client IP to any X-Forwarded-For already sent.
        forwarded_for = [*(self.headers.get_all("X-Forwarded-For") or []), self.client_address[0]]
        headers += [
            ("X-Forwarded-For", ", ".join(forwarded_for)),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Port", str(port)),
            ("X-Amzn-Trace-Id", _trace_header(self.headers.get("X-Amzn-Trace-Id"))),
        ]
        return headers

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        route: Route,
        target: Target,
        path: str,
        host_header: str,
        port: int,
        framing: tuple[str, int],
    ) -> None:
        """Send the request to the target and relay its response to the client."""
        label = f"{self.command} {host_header}{path} -> {target[0]}:{target[1]}"
        try:
            reachable = route.reachable(target)
        except Exception:
            logger.warning("edge proxy: reachable(%s) failed", target, exc_info=True)
            reachable = True
        if not reachable:
            # The target's rules drop the ALB's SYN: the connect times out (HTTP 504).
            time.sleep(route.unreachable_wait)
            return self._target_failed(route, target, 504, label, "connect timeout (dropped)")
        try:
            conn.connect()
        except TimeoutError:
            return self._target_failed(route, target, 504, label, "connect timeout")
        except OSError as exc:  # refused/reset: troubleshooting, "HTTP 502"
            return self._target_failed(route, target, 502, label, f"connect failed: {exc}")
        assert conn.sock is not None
        self.server.track(conn.sock)
        conn.sock.settimeout(route.idle_timeout)

        kind, length = framing
        try:
            conn.putrequest(self.command, path, skip_host=True, skip_accept_encoding=True)
            for name, value in self._upstream_headers(host_header, port):
                conn.putheader(name, value)
            if kind == "chunked":
                conn.putheader("Transfer-Encoding", "chunked")
            elif length or self.command in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(length))
        except ValueError as exc:  # characters http.client refuses to send: malformed request
            logger.debug("edge proxy: %s: unsendable request: %s", label, exc)
            self._close_after = True
            self._send_alb_error(400)
            return None

        body = self._chunked_body() if kind == "chunked" else self._sized_body(length)
        try:
            conn.endheaders()
            for piece in body:
                conn.send(piece)
            self._close_after = False  # the client's body has been read completely
        except _ClientError:
            raise
        except OSError as exc:
            # The target may have answered early (e.g. 413) and closed: read its response.
            logger.debug("edge proxy: %s: sending request failed: %s", label, exc)

        try:
            response = conn.getresponse()
        except TimeoutError:
            return self._target_failed(route, target, 504, label, "idle timeout")
        except (http.client.HTTPException, OSError) as exc:
            return self._target_failed(route, target, 502, label, f"bad response: {exc!r}")
        _report(route, target, True)
        self._relay(response, label)

    def _target_failed(self, route: Route, target: Target, code: int, label: str, why: str) -> None:
        logger.debug("edge proxy: %s: %s -> %d", label, why, code)
        _report(route, target, False)
        self._send_alb_error(code)

    def _sized_body(self, length: int) -> Iterator[bytes]:
        remaining = length
        while remaining > 0:
            data = self._read_client(min(_CHUNK, remaining))
            if not data:
                raise _ClientError("client closed the connection mid-body")
            remaining -= len(data)
            yield data

    def _chunked_body(self) -> Iterator[bytes]:
        """Decode the client's chunked body and re-frame it chunked for the target."""
        while True:
            line = self._read_client_line()
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _ClientError(f"bad chunk size line {line[:40]!r}") from None
            if size == 0:
                while self._read_client_line() not in (b"\r\n", b"\n", b""):
                    pass  # trailers are dropped, as a proxy may
                yield b"0\r\n\r\n"
                return
            remaining = size
            yield b"%X\r\n" % size
            while remaining > 0:
                piece = self._read_client(min(_CHUNK, remaining))
                if not piece:
                    raise _ClientError("client closed the connection mid-chunk")
                remaining -= len(piece)
                yield piece
            self._read_client_line()  # the CRLF after the chunk data
            yield b"\r\n"

    def _read_client(self, size: int) -> bytes:
        try:
            return self.rfile.read(size)
        except OSError as exc:
            raise _ClientError(f"reading the request body failed: {exc}") from exc

    def _read_client_line(self) -> bytes:
        try:
            line = self.rfile.readline(_CHUNK + 1)
        except OSError as exc:
            raise _ClientError(f"reading the request body failed: {exc}") from exc
        if not line:
            raise _ClientError("client closed the connection mid-body")
        return line

    # -- responses ----------------------------------------------------------------------

    def _relay(self, response: http.client.HTTPResponse, label: str) -> None:
        """Stream the target's response back, re-framing the body when needed."""
        no_body = self.command == "HEAD" or response.status in (204, 304) or response.status < 200
        connection_tokens = {
            token.strip().lower()
            for value in response.headers.get_all("Connection") or []
            for token in value.split(",")
        }
        sized = response.getheader("Content-Length") is not None and not response.chunked
        rechunk = not no_body and not sized and self.request_version >= "HTTP/1.1"
        if not no_body and not sized and not rechunk:
            self._close_after = True  # HTTP/1.0 client: the body ends when we close

        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            lowered = name.lower()
            if lowered in _HOP_BY_HOP or lowered in connection_tokens:
                continue
            if lowered == "content-length" and not (sized or no_body):
                continue
            self.send_header(name, value)
        if rechunk:
            self.send_header("Transfer-Encoding", "chunked")
        self._send_connection_header()
        logger.debug("edge proxy: %s -> %d", label, response.status)
        try:
            self.end_headers()
            if no_body:
                return
            while True:
                try:
                    data = response.read1(_CHUNK)
                except (http.client.HTTPException, OSError) as exc:
                    # Headers are gone already: all an ALB can do now is cut the connection.
                    logger.debug("edge proxy: %s: response body failed: %r", label, exc)
                    self.close_connection = True
                    return
                if not data:
                    break
                self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data) if rechunk else data)
            if sized and response.length:  # target closed before sending Content-Length bytes
                self.close_connection = True
            elif rechunk:
                self.wfile.write(b"0\r\n\r\n")
        except OSError as exc:
            raise _ClientError(f"writing the response failed: {exc}") from exc

    def _send_connection_header(self) -> None:
        # send_header("Connection", ...) also sets close_connection for http.server.
        keep_alive = not (self.close_connection or self._close_after)
        self.send_header("Connection", "keep-alive" if keep_alive else "close")

    def _send_alb_error(self, code: int) -> None:
        reason = _ALB_REASONS.get(code) or HTTPStatus(code).phrase
        body = _alb_page(code, reason)
        self._send_simple(code, reason, "text/html", body, server="awselb/2.0")

    def _send_text(self, code: int, message: str) -> None:
        body = (message + "\n").encode("utf-8")
        reason = HTTPStatus(code).phrase
        self._send_simple(code, reason, "text/plain; charset=utf-8", body, server="handson-sandbox")

    def _send_simple(
        self, code: int, reason: str, content_type: str, body: bytes, *, server: str
    ) -> None:
        # self.path is unset when the request line itself could not be parsed.
        logger.debug('edge proxy: "%s %s" -> %d', self.command, getattr(self, "path", ""), code)
        try:
            self.send_response_only(code, reason)
            self.send_header("Server", server)
            self.send_header("Date", self.date_time_string())
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self._send_connection_header()
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError as exc:
            raise _ClientError(f"writing the response failed: {exc}") from exc


class EdgeProxy:
    """Serve the sandbox's load balancers on one loopback port.

    ``route(hostname, port)`` maps a load balancer DNS name and listener port to a Route,
    or None when no load balancer in the sandbox answers there. Start with :meth:`start`
    (or ``with EdgeProxy(...) as proxy:``); :meth:`stop` closes the listening socket and
    breaks off open connections.
    """

    def __init__(self, route: RouteLookup, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._route = route
        self._bind = (host, port)
        self._lock = threading.Lock()
        self._server: _EdgeServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> EdgeProxy:
        """Bind and serve in a background thread; returns self. Idempotent while running."""
        with self._lock:
            if self._server is not None:
                return self
            server = _EdgeServer(self._bind, self._route)
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"edge-proxy-{server.server_port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
        logger.debug("edge proxy listening on %s:%d", server.server_name, server.server_port)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close the socket, end open connections. Safe to call twice."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None or thread is None:
            return
        deadline = time.monotonic() + timeout
        server.shutdown()  # ends serve_forever; no new connections after this
        server.server_close()
        server.break_connections()
        thread.join(max(0.0, deadline - time.monotonic()))
        server.join_workers(deadline)
        logger.debug("edge proxy on port %d stopped", server.server_port)

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the proxy listens on; raises RuntimeError before start()."""
        server = self._server
        if server is None:
            raise RuntimeError("EdgeProxy is not running; call start() first")
        return server.server_name, server.server_port

    @property
    def url(self) -> str:
        """``http://host:port``, the value for ``curl --proxy`` or ``HTTP_PROXY``."""
        host, port = self.address
        return f"http://{host}:{port}"

    def __enter__(self) -> EdgeProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
