"""The ALB data path on loopback: EdgeProxy against tiny local http.server backends.

All traffic stays on 127.0.0.1: the ALB DNS name is only ever sent as a proxy URI or a
Host header, never resolved.
"""

import http.client
import json
import re
import socket
import socketserver
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from handson.sandbox.dataplane.proxy import EdgeProxy, Route

ALB = "my-alb-123.ap-northeast-1.elb.amazonaws.com"

# The pages an ALB generates itself (the archived ALB guide's load-balancer-troubleshooting.md;
# docs/sandbox.md, "The ALB on the wire"), byte for byte.
ALB_503 = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n"
)
ALB_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
ALB_504 = (
    b"<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
    b"<center><h1>504 Gateway Time-out</h1></center>\r\n</body>\r\n</html>\r\n"
)


# --------------------------------------------------------------------------- backends


class EchoHandler(BaseHTTPRequestHandler):
    """Answers with JSON describing the request it received (and which backend it is)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # keep test output clean
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            for _ in range(10_000):  # bounded: plenty for the bodies in these tests
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
            raise AssertionError("chunked body did not end")
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        body = self._body()
        if self.path == "/slow":
            self.server.release.wait(10)  # bounded; the test releases it
        if self.path == "/stream":
            # No Content-Length: the body ends when the connection closes.
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            for piece in (b"one,", b"two,", b"three"):
                self.wfile.write(piece)
            self.close_connection = True
            return
        payload = json.dumps(
            {
                "backend": self.server.name,
                "method": self.command,
                "path": self.path,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body": body.decode("utf-8"),
            }
        ).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Set-Cookie", "a=1")
        self.send_header("Set-Cookie", "b=2")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


class Backend(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.release = threading.Event()
        super().__init__(("127.0.0.1", 0), EchoHandler)

    def server_bind(self):
        # Skip HTTPServer's getfqdn() lookup.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    @property
    def target(self) -> tuple[str, int]:
        return ("127.0.0.1", self.server_address[1])


@pytest.fixture
def backend():
    started: list[Backend] = []

    def start(name: str) -> Backend:
        server = Backend(name)
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.release.set()
        server.shutdown()
        server.server_close()


class RoundRobin:
    """A data plane stand-in: cycles through targets and records passive reports."""

    def __init__(self, *targets: tuple[str, int], **route_options) -> None:
        self.targets = list(targets)
        self.reports: list[tuple[tuple[str, int], bool]] = []
        self._next = 0
        self._lock = threading.Lock()
        self.route = Route(pick=self.pick, report=self.report, **route_options)

    def pick(self):
        with self._lock:
            if not self.targets:
                return None
            target = self.targets[self._next % len(self.targets)]
            self._next += 1
            return target

    def report(self, target, ok):
        with self._lock:
            self.reports.append((target, ok))


@pytest.fixture
def edge():
    routes: dict[tuple[str, int], Route] = {}
    proxy = EdgeProxy(lambda host, port: routes.get((host, port))).start()
    yield proxy, routes
    proxy.stop()


def send(proxy, method, target, *, host=None, body=None, headers=None, conn=None):
    """One request through the proxy; target is an absolute URI (proxy mode) or a path."""
    own = conn is None
    conn = conn or http.client.HTTPConnection(*proxy.address, timeout=10)
    try:
        hdrs = dict(headers or {})
        if host is not None:
            hdrs["Host"] = host
        conn.request(method, target, body=body, headers=hdrs)
        response = conn.getresponse()
        return response, response.read()
    finally:
        if own:
            conn.close()


def header_map(echo: dict) -> dict[str, str]:
    return {k.lower(): v for k, v in echo["headers"]}


# --------------------------------------------------------------------------- forwarding


def test_forward_proxy_mode_like_curl_proxy(edge, backend):
    proxy, routes = edge
    routes[(ALB, 80)] = RoundRobin(backend("a").target).route
    # urllib with an explicit proxy sends absolute-URI request lines, as curl --proxy does.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy.url}))
    with opener.open(f"http://{ALB}/health?verbose=1", timeout=10) as response:
        assert response.status == 200
        echo = json.loads(response.read())
    assert echo["path"] == "/health?verbose=1"
    headers = header_map(echo)
    assert headers["host"] == ALB  # the target sees the ALB name, as behind a real ALB
    # ALB request headers ([ALB-2023] x-forwarded-headers.md, load-balancer-request-tracing.md).
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-port"] == "80"
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", headers["x-amzn-trace-id"])
    assert "proxy-connection" not in headers


def test_host_header_mode(edge, backend):
    proxy, routes = edge
    routes[(ALB, 80)] = RoundRobin(backend("a").target).route
    response, data = send(proxy, "GET", "/users/7", host=ALB)
    assert response.status == 200
    echo = json.loads(data)
    assert (echo["method"], echo["path"]) == ("GET", "/users/7")
    assert header_map(echo)["host"] == ALB
    # Repeated response headers survive (two Set-Cookie lines).
    assert response.headers.get_all("Set-Cookie") == ["a=1", "b=2"]


def test_listener_port_comes_from_the_url_or_host(edge, backend):
    proxy, routes = edge
    routes[(ALB, 8080)] = RoundRobin(backend("a").target).route
    _, data = send(proxy, "GET", f"http://{ALB}:8080/x")
    assert header_map(json.loads(data))["x-forwarded-port"] == "8080"
    response, _ = send(proxy, "GET", "/x", host=ALB)  # port 80 has no listener
    assert response.status == 404


def test_post_json_round_trip(edge, backend):
    proxy, routes = edge
    routes[(ALB, 80)] = RoundRobin(backend("a").target).route
    payload = json.dumps({"name": "Ada", "email": "ada@example.com", "note": "日本語"})
    response, data = send(
        proxy, "POST", f"http://{ALB}/users", body=payload.encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status == 201
    echo = json.loads(data)
    assert json.loads(echo["body"]) == json.loads(payload)
    assert header_map(echo)["content-type"] == "application/json"


def test_chunked_request_body(edge, backend):
    proxy, routes = edge
    routes[(ALB, 80)] = RoundRobin(backend("a").target).route
    parts = [b'{"name": ', b'"chunked"', b"}"]
    conn = http.client.HTTPConnection(*proxy.address, timeout=10)
    try:
        conn.request(
            "PUT", "/users/1", body=iter(parts), encode_chunked=True, headers={"Host": ALB}
        )
        response = conn.getresponse()
        echo = json.loads(response.read())
    finally:
        conn.close()
    assert json.loads(echo["body"]) == {"name": "chunked"}
    assert header_map(echo)["transfer-encoding"] == "chunked"


def test_hop_by_hop_headers_are_stripped_and_forwarded_headers_appended(edge, backend):
    proxy, routes = edge
    routes[(ALB, 80)] = RoundRobin(backend("a").target).route
    _, data = send(
        proxy, "GET", "/", host=ALB,
        headers={
            "Connection": "keep-alive, X-Private",
            "X-Private": "secret",
            "Keep-Alive": "timeout=5",
            "Proxy-Authorization": "Basic Zm9vOmJhcg==",
            "X-Forwarded-For": "203.0.113.7",
            "X-Amzn-Trace-Id": "Root=1-67891233-abcdef012345678912345678",
            "X-Custom": "kept",
        },
    )  # fmt: skip
    headers = header_map(json.loads(data))
    for name in ("x-private", "keep-alive", "proxy-authorization"):
        assert name not in headers
    assert headers["x-custom"] == "kept"
    # The ALB appends the client address (x-forwarded-headers.md) and adds a Self field
    # in front of an existing Root (load-balancer-request-tracing.md).
    assert headers["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert re.fullmatch(
        r"Self=1-[0-9a-f]{8}-[0-9a-f]{24};Root=1-67891233-abcdef012345678912345678",
        headers["x-amzn-trace-id"],
    )


def test_round_robin_over_two_targets(edge, backend):
    proxy, routes = edge
    a, b = backend("a"), backend("b")
    balancer = RoundRobin(a.target, b.target)
    routes[(ALB, 80)] = balancer.route
    seen = [json.loads(send(proxy, "GET", "/", host=ALB)[1])["backend"] for _ in range(4)]
    assert seen == ["a", "b", "a", "b"]
    assert balancer.reports == [(a.target, True), (b.target, True)] * 2


def test_keep_alive_reuses_the_client_connection(edge, backend):
    proxy, routes = edge
    routes[(ALB, 80)] = RoundRobin(backend("a").target).route
    conn = http.client.HTTPConnection(*proxy.address, timeout=10)
    try:
        for i in range(3):
            response, data = send(proxy, "GET", f"/n/{i}", host=ALB, conn=conn)
            assert response.status == 200 and json.loads(data)["path"] == f"/n/{i}"
            assert response.getheader("Connection") == "keep-alive"
    finally:
        conn.close()


def test_close_delimited_response_is_streamed_back(edge, backend):
    proxy, routes = edge
    routes[(ALB, 80)] = RoundRobin(backend("a").target).route
    response, data = send(proxy, "GET", "/stream", host=ALB)
    assert response.status == 200
    assert data == b"one,two,three"
    assert response.getheader("Transfer-Encoding") == "chunked"  # re-framed for HTTP/1.1


def test_head_keeps_content_length_without_body(edge, backend):
    proxy, routes = edge
    routes[(ALB, 80)] = RoundRobin(backend("a").target).route
    response, data = send(proxy, "HEAD", "/", host=ALB)
    assert response.status == 200 and data == b""
    assert int(response.getheader("Content-Length")) > 0


def test_many_concurrent_requests(edge, backend):
    proxy, routes = edge
    balancer = RoundRobin(backend("a").target, backend("b").target)
    routes[(ALB, 80)] = balancer.route

    def one(i: int) -> tuple[int, str]:
        response, data = send(proxy, "GET", f"/c/{i}", host=ALB)
        return response.status, json.loads(data)["path"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, range(48)))
    assert results == [(200, f"/c/{i}") for i in range(48)]
    assert len(balancer.reports) == 48 and all(ok for _, ok in balancer.reports)


# --------------------------------------------------------------------------- ALB errors


def test_no_targets_is_a_503_page_from_awselb(edge):
    proxy, routes = edge
    routes[(ALB, 80)] = RoundRobin().route  # no registered targets
    response, data = send(proxy, "GET", f"http://{ALB}/health")
    # [ALB-2023] troubleshooting, "HTTP 503": the target groups have no registered targets.
    assert (response.status, response.reason) == (503, "Service Temporarily Unavailable")
    assert data == ALB_503
    assert response.getheader("Server") == "awselb/2.0"
    assert response.getheader("Content-Type") == "text/html"
    assert response.getheader("Content-Length") == str(len(ALB_503))


def test_closed_target_port_is_a_502(edge):
    proxy, routes = edge
    with socket.socket() as probe:  # a port that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()
    balancer = RoundRobin(closed)
    routes[(ALB, 80)] = balancer.route
    response, data = send(proxy, "GET", "/", host=ALB)
    # Troubleshooting, "HTTP 502": a TCP RST while connecting to the target.
    assert (response.status, response.reason) == (502, "Bad Gateway")
    assert data == ALB_502
    assert response.getheader("Server") == "awselb/2.0"
    assert balancer.reports == [(closed, False)]


def test_target_slower_than_idle_timeout_is_a_504(edge, backend):
    proxy, routes = edge
    slow = backend("slow")
    balancer = RoundRobin(slow.target, idle_timeout=0.2)
    routes[(ALB, 80)] = balancer.route
    try:
        response, data = send(proxy, "GET", "/slow", host=ALB)
    finally:
        slow.release.set()
    # Troubleshooting, "HTTP 504": no response before the idle timeout elapsed.
    assert (response.status, response.reason) == (504, "Gateway Time-out")
    assert data == ALB_504
    assert balancer.reports == [(slow.target, False)]


@pytest.mark.parametrize("mode", ["proxy", "host"])
def test_unknown_load_balancer_is_like_a_dns_failure(edge, mode):
    proxy, _ = edge
    name = "nope-999.ap-northeast-1.elb.amazonaws.com"
    if mode == "proxy":
        response, data = send(proxy, "GET", f"http://{name}/")
    else:
        response, data = send(proxy, "GET", "/", host=name)
    assert response.status == 404
    assert response.getheader("Content-Type").startswith("text/plain")
    assert name in data.decode() and "no load balancer" in data.decode()


def test_unsupported_transfer_encoding_is_a_501(edge, backend):
    proxy, routes = edge
    routes[(ALB, 80)] = RoundRobin(backend("a").target).route
    response, _ = send(
        proxy, "POST", "/", host=ALB, body=b"x", headers={"Transfer-Encoding": "gzip"}
    )
    # Troubleshooting, "HTTP 501": only chunked and identity are supported.
    assert response.status == 501
    assert response.getheader("Server") == "awselb/2.0"


# --------------------------------------------------------------------------- lifecycle


def test_no_output_on_stdout_or_stderr(edge, backend, capfd):
    proxy, routes = edge
    routes[(ALB, 80)] = RoundRobin(backend("a").target).route
    send(proxy, "GET", "/", host=ALB)
    send(proxy, "GET", "/", host="unknown.example")
    assert capfd.readouterr() == ("", "")


def test_stop_closes_socket_and_open_connections(backend):
    target = backend("a").target
    proxy = EdgeProxy(lambda host, port: RoundRobin(target).route).start()
    address = proxy.address
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        response, _ = send(proxy, "GET", "/", host=ALB, conn=conn)
        assert response.status == 200
        proxy.stop()
        proxy.stop()  # idempotent
        with pytest.raises((http.client.HTTPException, OSError)):
            send(proxy, "GET", "/", host=ALB, conn=conn)  # the kept-alive connection is gone
    finally:
        conn.close()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(address, timeout=5):
        pass
    with pytest.raises(RuntimeError):
        _ = proxy.address


def test_context_manager():
    with EdgeProxy(lambda host, port: None) as proxy:
        assert proxy.url == f"http://127.0.0.1:{proxy.address[1]}"
        response, _ = send(proxy, "GET", "/", host=ALB)
        assert response.status == 404
