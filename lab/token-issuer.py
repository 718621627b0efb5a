#!/usr/bin/env python3
"""Bearer token issuer for the pullstorm lab (the registry's `auth.token` realm).

A small stand-in for Harbor's /service/token, speaking the Docker registry token protocol:

  GET  /token?service=S&scope=repository:NAME:pull,push[&scope=...]
       with or without HTTP Basic credentials (what dockerd does);
  POST /token  form: grant_type=password, username, password, service, scope, client_id
       (what containerd does when it has a secret);
  GET  /healthz -> 200 "ok".

Answers {"token", "access_token", "expires_in", "issued_at"}. Tokens are JWTs signed RS256
(RSA key) or ES256 (P-256 key) with the key of --key; the header carries the signing
certificate (x5c) and its libtrust key id (kid), so distribution accepts the token when
--cert is in its `rootcertbundle`.

Grants: valid credentials get every requested action on `repository:*` scopes and
`registry:catalog:*`; anonymous requests get an empty access list (like a private Harbor
project), or `pull` with --anonymous-pull; wrong credentials get 401.

Needs Python 3 and python3-cryptography only (Debian packages). Passwords and tokens are
never logged.
"""

import argparse
import base64
import hashlib
import hmac
import json
import signal
import sys
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

REPOSITORY_ACTIONS = {"pull", "push", "delete", "*"}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def libtrust_key_id(public_key):
    """Key id as docker/libtrust computes it: base32 of the first 240 bits of the SHA-256
    of the DER SubjectPublicKeyInfo, in 12 groups of 4 characters joined by ':'."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii")
    return ":".join(text[i : i + 4] for i in range(0, len(text), 4))


class Signer:
    def __init__(self, key_path, cert_path):
        with open(key_path, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), password=None)
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        if isinstance(self.key, rsa.RSAPrivateKey):
            self.alg = "RS256"
        elif isinstance(self.key, ec.EllipticCurvePrivateKey) and self.key.curve.name == "secp256r1":
            self.alg = "ES256"
        else:
            raise SystemExit("token-issuer: --key must be an RSA or a P-256 EC private key")
        self.header = {
            "typ": "JWT",
            "alg": self.alg,
            "kid": libtrust_key_id(cert.public_key()),
            "x5c": [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")],
        }

    def sign(self, claims):
        signing_input = (
            b64url(json.dumps(self.header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        ).encode("ascii")
        if self.alg == "RS256":
            signature = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return signing_input.decode("ascii") + "." + b64url(signature)


def load_credentials(path):
    users = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#") and ":" in line:
                user, password = line.split(":", 1)
                users[user] = password
    if not users:
        raise SystemExit(f"token-issuer: no user:password line in {path}")
    return users


def parse_scopes(values):
    """'repository:lab/big:pull,push' -> ('repository', 'lab/big', ['pull', 'push'])."""
    scopes = []
    for value in values:
        for item in value.split(" "):  # a scope parameter may hold several, space separated
            parts = item.split(":")
            if len(parts) < 3:
                continue
            scopes.append((parts[0], ":".join(parts[1:-1]), [a for a in parts[-1].split(",") if a]))
    return scopes


class Handler(BaseHTTPRequestHandler):
    server_version = "pullstorm-lab-token-issuer/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet default logging; see _log
        pass

    def _log(self, status, user, detail):
        sys.stderr.write(
            f"{datetime.now(timezone.utc).isoformat(timespec='milliseconds')} {self.client_address[0]} "
            f"\"{self.command} {urlsplit(self.path).path}\" {status} user={user or '-'} {detail}\n"
        )

    def _reply(self, status, body, extra_headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in extra_headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _basic_credentials(self):
        header = self.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return ("", "")
        return (user, password)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/healthz":
            data = b"ok\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if url.path != "/token":
            self._reply(404, {"errors": [{"code": "NOT_FOUND", "message": "try /token"}]})
            return
        self._issue(parse_qs(url.query), self._basic_credentials(), refresh_token=False)

    def do_POST(self):
        url = urlsplit(self.path)
        if url.path != "/token":
            self._reply(404, {"errors": [{"code": "NOT_FOUND", "message": "try /token"}]})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > 64 * 1024:
            self._reply(400, {"error": "invalid_request"})
            return
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        grant = form.get("grant_type", [""])[0]
        if grant != "password":
            self._log(400, None, f"unsupported grant_type={grant or '-'}")
            self._reply(400, {"error": "unsupported_grant_type"})
            return
        creds = (form.get("username", [""])[0], form.get("password", [""])[0])
        self._issue(form, creds, refresh_token=True)

    def _issue(self, params, creds, refresh_token):
        cfg = self.server.cfg
        user = None
        if creds is not None:
            expected = cfg.users.get(creds[0])
            if expected is None or not hmac.compare_digest(expected.encode(), creds[1].encode()):
                self._log(401, creds[0], "bad credentials")
                self._reply(
                    401,
                    {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                    [("WWW-Authenticate", 'Basic realm="pullstorm-lab"')],
                )
                return
            user = creds[0]
        access = []
        for kind, name, actions in parse_scopes(params.get("scope", [])):
            if kind == "repository":
                allowed = REPOSITORY_ACTIONS if user else ({"pull"} if cfg.anonymous_pull else set())
            elif kind == "registry" and name == "catalog":
                allowed = {"*"} if user else set()
            else:
                allowed = set()
            granted = [a for a in actions if a in allowed]
            if granted:
                access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        claims = {
            "iss": cfg.issuer,
            "sub": user or "",
            "aud": cfg.service,
            "exp": now + cfg.ttl,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        token = cfg.signer.sign(claims)
        body = {
            "token": token,
            "access_token": token,
            "expires_in": cfg.ttl,
            "issued_at": datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if refresh_token:
            body["scope"] = " ".join(params.get("scope", []))
        granted_text = ";".join(f"{a['type']}:{a['name']}:{','.join(a['actions'])}" for a in access)
        self._log(200, user, f"granted={granted_text or '-'}")
        self._reply(200, body)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:5010", help="HOST:PORT (default %(default)s)")
    ap.add_argument("--key", required=True, help="PEM private key (RSA or P-256) that signs the tokens")
    ap.add_argument("--cert", required=True, help="PEM certificate of that key (the registry's rootcertbundle)")
    ap.add_argument("--credentials", required=True, help="file of user:password lines")
    ap.add_argument("--issuer", default="pullstorm-lab-issuer", help="'iss' claim (registry auth.token.issuer)")
    ap.add_argument("--service", default="pullstorm-lab", help="'aud' claim (registry auth.token.service)")
    ap.add_argument("--ttl", type=int, default=300, help="token lifetime in seconds (default %(default)s)")
    ap.add_argument("--anonymous-pull", action="store_true", help="grant pull to requests without credentials")
    args = ap.parse_args()

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        ap.error("--listen must be HOST:PORT")
    server = ThreadingHTTPServer((host.strip("[]"), int(port)), Handler)
    server.daemon_threads = True
    server.cfg = argparse.Namespace(
        signer=Signer(args.key, args.cert),
        users=load_credentials(args.credentials),
        issuer=args.issuer,
        service=args.service,
        ttl=max(1, args.ttl),
        anonymous_pull=args.anonymous_pull,
    )
    sys.stderr.write(
        f"token-issuer: listening on {args.listen}, {server.cfg.signer.alg}, issuer={args.issuer}, "
        f"service={args.service}, ttl={server.cfg.ttl}s\n"
    )
    sys.stderr.flush()
    # As PID 1 of a container, SIGTERM is ignored unless handled.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
