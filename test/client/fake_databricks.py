#!/usr/bin/env python3
"""A stand-in for a Databricks workspace, for the C++ client's tests.

Serves, on 127.0.0.1 (standard library only):
  GET  /oidc/.well-known/oauth-authorization-server  -> {"token_endpoint": ...}
  POST /oidc/v1/token           OAuth client_credentials (Basic auth or form)
  POST /api/2.0/database/credentials        (Lakebase Provisioned)
        Bearer PAT, OAuth or CLI access token; JSON {"request_id", "instance_names"}
        -> {"token": ..., "expiration_time": RFC 3339}
  POST /api/2.0/postgres/credentials        (Lakebase Autoscaling)
        Bearer token; JSON {"endpoint": "projects/../branches/../endpoints/..",
        optional "ttl": "<N>s"}; anything else in the body is a 400
        -> {"token": ..., "expire_time": RFC 3339 with frac_digits fractional digits}
Every credential is a new random password that is also set on the
PostgreSQL role (ALTER ROLE through psql over the unix socket), so the
previous credential really stops working.

Control endpoints (tests only):
  POST /control/down     {"seconds": N}   answer 503 for N seconds (0 = up again)
  POST /control/revoke                    set an unknown password on the role
  POST /control/config   {"expires_in": N, "discovery": bool, "token_endpoint": URL|null,
                          "bogus": bool, "hang_seconds": N, "frac_digits": 0-9}
                          bogus: credentials are not set on the role (the
                          server refuses every one: a role without access);
                          hang_seconds: the credentials endpoints wait that
                          long before answering;
                          expires_in may be negative or 0: credentials then
                          arrive with an expiration_time already past;
                          token_endpoint: what discovery advertises (null =
                          this server's /oidc/v1/token)
  POST /evil/token        counts requests (stats "evil_token") and otherwise
                          answers like /oidc/v1/token: a token endpoint that
                          must never receive the client secret
  POST /control/cli_token                 a workspace access token as the
                          Databricks CLI prints it: {"access_token",
                          "token_type", "expiry"} (test/client/fake_databricks_cli)
  GET  /control/stats                     counters (and the last Autoscaling
                          request body)
"""
import argparse
import base64
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.down_until = 0.0
        self.expires_in = args.expires_in
        self.discovery = True
        self.token_endpoint = None
        self.access_tokens = set()
        self.bogus = False
        self.hang_seconds = 0.0
        self.frac_digits = 6
        self.last_postgres_body = None
        self.stats = {"credentials": 0, "oauth_tokens": 0, "revocations": 0,
                      "rejected_auth": 0, "unavailable": 0, "discovery": 0, "evil_token": 0,
                      "postgres_credentials": 0, "cli_tokens": 0}

    def set_role_password(self, password):
        # Quote as a SQL literal (the password is generated here, but quote anyway).
        lit = "'" + password.replace("'", "''") + "'"
        sql = "ALTER ROLE \"%s\" PASSWORD %s;\n" % (self.args.role.replace('"', '""'), lit)
        env = dict(os.environ)
        env.pop("PGPASSWORD", None)
        subprocess.run(
            [self.args.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.args.pghost,
             "-p", str(self.args.pgport), "-U", self.args.pguser, "-d", "postgres"],
            input=sql.encode(), check=True, env=env, stdout=subprocess.DEVNULL)


STATE = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        if STATE.args.verbose:
            sys.stderr.write("fake_databricks: " + (fmt % args) + "\n")

    def send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a deadline, or shutting down)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def base(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def unavailable(self):
        if time.time() < STATE.down_until:
            with STATE.lock:
                STATE.stats["unavailable"] += 1
            self.send_json(503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "workspace is down (test)"})
            return True
        return False

    def do_GET(self):
        path = urllib.parse.urlparse(self.path).path
        if path == "/control/stats":
            with STATE.lock:
                out = dict(STATE.stats)
                out["last_postgres_body"] = STATE.last_postgres_body
                return self.send_json(200, out)
        if self.unavailable():
            return
        if path == "/oidc/.well-known/oauth-authorization-server":
            with STATE.lock:
                STATE.stats["discovery"] += 1
                enabled = STATE.discovery
                endpoint = STATE.token_endpoint or (self.base() + "/oidc/v1/token")
            if not enabled:
                return self.send_json(404, {"error": "not found"})
            return self.send_json(200, {"issuer": self.base() + "/oidc",
                                        "token_endpoint": endpoint,
                                        "grant_types_supported": ["client_credentials"]})
        self.send_json(404, {"error": "not found"})

    def do_POST(self):
        path = urllib.parse.urlparse(self.path).path
        body = self.read_body()
        if path.startswith("/control/"):
            return self.control(path, body)
        if self.unavailable():
            return
        if path == "/oidc/v1/token":
            return self.oauth_token(body)
        if path == "/evil/token":
            with STATE.lock:
                STATE.stats["evil_token"] += 1
            return self.oauth_token(body)
        if path == "/api/2.0/database/credentials":
            return self.credentials(body)
        if path == "/api/2.0/postgres/credentials":
            return self.postgres_credentials(body)
        self.send_json(404, {"error": "not found"})

    def control(self, path, body):
        req = json.loads(body or b"{}")
        if path == "/control/down":
            STATE.down_until = time.time() + float(req.get("seconds", 0))
            return self.send_json(200, {"ok": True})
        if path == "/control/revoke":
            with STATE.lock:
                STATE.set_role_password("revoked-" + secrets.token_hex(16))
                STATE.stats["revocations"] += 1
            return self.send_json(200, {"ok": True})
        if path == "/control/config":
            with STATE.lock:
                if "expires_in" in req:
                    STATE.expires_in = int(req["expires_in"])
                if "discovery" in req:
                    STATE.discovery = bool(req["discovery"])
                if "token_endpoint" in req:
                    STATE.token_endpoint = req["token_endpoint"]
                if "bogus" in req:
                    STATE.bogus = bool(req["bogus"])
                if "hang_seconds" in req:
                    STATE.hang_seconds = float(req["hang_seconds"])
                if "frac_digits" in req:
                    STATE.frac_digits = int(req["frac_digits"])
            return self.send_json(200, {"ok": True})
        if path == "/control/cli_token":
            tok = "cli-" + secrets.token_hex(16)
            with STATE.lock:
                STATE.access_tokens.add(tok)
                STATE.stats["cli_tokens"] += 1
            expiry = datetime.now(timezone.utc).astimezone(timezone(timedelta(hours=1))) + timedelta(hours=1)
            return self.send_json(200, {"access_token": tok, "token_type": "Bearer",
                                        "expiry": expiry.isoformat(timespec="microseconds")})
        self.send_json(404, {"error": "not found"})

    def oauth_token(self, body):
        form = urllib.parse.parse_qs(body.decode())
        cid = form.get("client_id", [None])[0]
        secret = form.get("client_secret", [None])[0]
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except Exception:
                cid = secret = None
        if form.get("grant_type", [None])[0] != "client_credentials":
            return self.send_json(400, {"error": "unsupported_grant_type"})
        if cid != STATE.args.client_id or secret != STATE.args.client_secret:
            return self.send_json(401, {"error": "invalid_client"})
        tok = "oauth-" + secrets.token_hex(16)
        with STATE.lock:
            STATE.access_tokens.add(tok)
            STATE.stats["oauth_tokens"] += 1
        self.send_json(200, {"access_token": tok, "token_type": "Bearer", "expires_in": 3600, "scope": "all-apis"})

    def bearer_ok(self):
        auth = self.headers.get("Authorization", "")
        bearer = auth[7:] if auth.startswith("Bearer ") else None
        with STATE.lock:
            ok = bearer is not None and (bearer == STATE.args.pat or bearer in STATE.access_tokens)
            if not ok:
                STATE.stats["rejected_auth"] += 1
        if not ok:
            self.send_json(401, {"error_code": "UNAUTHENTICATED", "message": "invalid bearer token"})
        return ok

    def hang(self):
        if STATE.hang_seconds > 0:
            time.sleep(STATE.hang_seconds)

    def new_password(self):
        password = "dbtok-" + secrets.token_urlsafe(24)
        with STATE.lock:
            if not STATE.bogus:
                STATE.set_role_password(password)
            STATE.stats["credentials"] += 1
            expires = datetime.now(timezone.utc) + timedelta(seconds=STATE.expires_in)
        return password, expires

    def credentials(self, body):
        if not self.bearer_ok():
            return
        try:
            req = json.loads(body)
            uuid.UUID(req["request_id"])
            names = req["instance_names"]
        except Exception:
            return self.send_json(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "bad request body"})
        if STATE.args.instance not in names:
            return self.send_json(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "unknown instance"})
        self.hang()
        password, expires = self.new_password()
        self.send_json(200, {"token": password,
                             "expiration_time": expires.isoformat(timespec="microseconds").replace("+00:00", "Z")})

    def postgres_credentials(self, body):
        if not self.bearer_ok():
            return
        try:
            req = json.loads(body)
            with STATE.lock:
                STATE.last_postgres_body = req
                STATE.stats["postgres_credentials"] += 1
            if set(req) - {"endpoint", "ttl"}:
                raise ValueError("unknown fields")
            endpoint = req["endpoint"]
            ttl = req.get("ttl")
            if ttl is not None and not (isinstance(ttl, str) and ttl.endswith("s") and ttl[:-1].isdigit()):
                raise ValueError("bad ttl")
        except Exception:
            return self.send_json(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "bad request body"})
        if endpoint != STATE.args.endpoint:
            return self.send_json(404, {"error_code": "NOT_FOUND", "message": "unknown endpoint"})
        self.hang()
        password, expires = self.new_password()
        if ttl is not None:
            expires = datetime.now(timezone.utc) + timedelta(seconds=int(ttl[:-1]))
        digits = STATE.frac_digits
        stamp = expires.strftime("%Y-%m-%dT%H:%M:%S")
        if digits > 0:
            stamp += "." + ("%09d" % (expires.microsecond * 1000))[:digits]
        self.send_json(200, {"token": password, "expire_time": stamp + "Z"})


def main():
    global STATE
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--pghost", required=True, help="unix socket directory")
    ap.add_argument("--pgport", type=int, required=True)
    ap.add_argument("--pguser", default="postgres")
    ap.add_argument("--psql", default="psql")
    ap.add_argument("--role", required=True)
    ap.add_argument("--instance", default="test-instance")
    ap.add_argument("--endpoint", default="projects/test-project/branches/main/endpoints/ep-primary")
    ap.add_argument("--pat", required=True)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--client-secret", required=True)
    ap.add_argument("--expires-in", type=int, default=3600)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    STATE = State(args)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
