"""`ops.verify --url`: Umami's heartbeat and default login checked at any address (also for a
rehearsal), against small HTTP servers on 127.0.0.1; one HTTP timeout bounds the whole exchange."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ops.verify.checks.base import Severity, Status
from ops.verify.checks.http import http_request
from ops.core.db import Target
from ops.core.errors import OpsError
from ops.core.outputs import parse_outputs
from ops.verify.__main__ import main
from ops.verify.runner import run_verification
from tests.verify_support import JsonHandler, error_line

REHEARSAL_OUTPUTS = {"contractVersion": 1, "dbHost": "127.0.0.1", "dbPort": 5432, "dbName": "appdb",
                     "dbSchema": "umami", "dbRole": "umami_user", "dbSecretArn": "arn:aws:secretsmanager:x",
                     "rehearsal": True}
HTTP_CHECKS = {"DEP-005", "DEP-006"}


class Umami(JsonHandler):
    """Umami's two endpoints; the default login is accepted while `default_password` is set."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        self.server.seen.append(("GET", self.path))
        if self.path == "/api/heartbeat":
            return self._send(200, {"ok": True})
        if self.path == "/old/api/heartbeat":
            self.send_response(301)
            self.send_header("Location", "/api/heartbeat")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return self._send(404, {"error": "not found"})

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.seen.append(("POST", self.path, self.headers.get("User-Agent")))
        if self.path == "/api/auth/login" and self.server.default_password and body == {
                "username": "admin", "password": "umami"}:
            return self._send(200, {"token": "t0k3n", "user": {"id": "1", "username": "admin"}})
        return self._send(401, {"error": "message.incorrect-username-password"})

    def log_message(self, *args):
        pass


class Trickle(BaseHTTPRequestHandler):
    """Sends a little, then one byte every 50 ms: in the status line, or in the body."""

    def do_GET(self):  # noqa: N802
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        if self.server.where == "body":
            self.wfile.write(head)
            head = b"x" * 100000
        try:
            for byte in head:
                if self.server.stop.is_set():
                    return
                self.wfile.write(bytes([byte]))
                time.sleep(0.05)
        except OSError:  # the client gave up
            pass

    do_POST = do_GET  # noqa: N815 (http.server's naming)

    def log_message(self, *args):
        pass


def serve(handler, **state):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.seen, server.stop = [], threading.Event()
    for key, value in state.items():
        setattr(server, key, value)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def servers():
    started = []

    def start(handler, **state):
        server = serve(handler, **state)
        started.append(server)
        return server, f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in started:
        server.stop.set()
        server.shutdown()
        server.server_close()


def verify_url(url: str, outputs: dict = REHEARSAL_OUTPUTS, timeout: float = 5.0):
    # Only the deployment family runs: no database connection is opened.
    return run_verification(parse_outputs(outputs, "test"), umami=Target("127.0.0.1", 1, "appdb", "umami_user"),
                            admin=None, include_aws=False, only=["deployment"], url=url, http_timeout=timeout)


def statuses(report):
    return {r.check.id: r.status for r in report.results if r.family == "deployment"}


def test_rehearsal_with_url_checks_heartbeat_and_a_rotated_login(servers):
    server, url = servers(Umami, default_password=False)
    report = verify_url(url)
    assert {cid for cid, s in statuses(report).items() if s == Status.PASS} == HTTP_CHECKS
    reasons = {r.reason for r in report.results if r.family == "deployment" and r.check.id not in HTTP_CHECKS}
    assert reasons == {"rehearsal: nothing is deployed on AWS"}
    assert ("POST", "/api/auth/login", "Mozilla/5.0 (umami-ops verify)") in server.seen
    (result,) = [r for r in report.results if r.check.id == "DEP-005"]
    assert result.ran_as == f"HTTP to {url} (no AWS)"


def test_url_that_accepts_the_default_login_is_critical(servers):
    _, url = servers(Umami, default_password=True)
    report = verify_url(url)
    (result,) = [r for r in report.results if r.check.id == "DEP-006"]
    assert result.status == Status.FAIL and result.severity == Severity.CRITICAL
    assert "ACCEPTED" in result.findings[0].evidence
    assert statuses(report)["DEP-005"] == Status.PASS


def test_rehearsal_without_url_says_how_to_check_the_endpoints():
    reasons = {r.reason for r in verify_url(None).results if r.family == "deployment"}
    assert reasons == {"rehearsal: nothing is deployed on AWS (pass --url to check Umami's endpoints)"}


def test_get_follows_a_redirect_within_the_same_deadline(servers):
    server, url = servers(Umami, default_password=False)
    answer = http_request(url + "/old/api/heartbeat", timeout=2)
    assert (answer.status, json.loads(answer.body)) == (200, {"ok": True})
    assert server.seen == [("GET", "/old/api/heartbeat"), ("GET", "/api/heartbeat")]


@pytest.mark.parametrize("where", ["headers", "body"])
def test_trickling_server_is_cut_off_at_the_timeout(servers, where):
    _, url = servers(Trickle, where=where)
    started = time.monotonic()
    with pytest.raises(OpsError, match=rf"GET {url}/api/heartbeat: no complete answer within 0.6s"):
        verify_url(url, timeout=0.6)
    elapsed = time.monotonic() - started
    assert 0.55 <= elapsed < 0.6 + 0.4, elapsed


def test_cli_with_url_on_rehearsal_outputs(servers, tmp_path, capsys):
    _, url = servers(Umami, default_password=True)
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(REHEARSAL_OUTPUTS))
    assert main(["--outputs", str(path), "--only", "DEP-005,DEP-006", "--url", url + "/", "--format", "json"]) == 1
    checks = {c["id"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert (checks["DEP-005"]["status"], checks["DEP-006"]["status"]) == ("pass", "fail")
    assert checks["DEP-006"]["findings"][0]["severity"] == "critical"


@pytest.mark.parametrize("argv, message", [
    (["--url", "ftp://example.com"], "--url ftp://example.com: not an http(s) URL"),
    (["--url", "http://"], "--url http://: not an http(s) URL"),
    (["--url", "http://127.0.0.1:port"], "--url http://127.0.0.1:port: not an http(s) URL"),
])
def test_cli_refuses_a_bad_url_in_one_line(tmp_path, capsys, argv, message):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(REHEARSAL_OUTPUTS))
    assert main(["--outputs", str(path), *argv]) == 2
    assert error_line(capsys.readouterr().err) == f"error: {message} (e.g. http://127.0.0.1:3000)"


def test_cli_refuses_a_non_positive_timeout(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["--outputs", str(tmp_path / "o.json"), "--http-timeout", "0"])
    assert done.value.code == 2 and "--http-timeout 0: must be more than 0 seconds" in capsys.readouterr().err
