"""Throwaway TLS material and SCRAM credentials for the security tests (openssl; no Kafka imports).

A CA, a broker certificate for 127.0.0.1 and a client certificate whose key is encrypted with a password;
the SCRAM credential in the salted form kafka-storage accepts, so the password is on no command line.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRAM_ITERATIONS = 8192


@dataclass(frozen=True)
class ClientFiles:
    """The files a client of the secure listeners is configured with, and the secrets inside them."""

    ca: Path
    cert: Path
    key: Path  # PKCS#8, encrypted with key_password
    key_password_file: Path
    password_file: Path
    username: str
    password: str
    key_password: str

    def key_material(self) -> list[str]:
        """The base64 lines of the encrypted client key: none may ever show up in a log."""
        return [line for line in self.key.read_text().splitlines() if line and not line.startswith("-----")]


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr[-2000:]}")


def _write_secret(path: Path, value: str) -> Path:
    path.write_text(value + "\n")  # a trailing newline, as `echo` and most secret stores write it
    path.chmod(0o600)
    return path


def make_certificates(directory: Path, username: str = "enricher") -> tuple[ClientFiles, Path]:
    """A CA, the broker's PEM keystore (key + chain, unencrypted, for Kafka) and a client's files."""
    directory.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    key_password = secrets.token_urlsafe(24)
    key_password_file = _write_secret(directory / "client-key.password", key_password)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=receipt-enricher test CA", cwd=directory)
    (directory / "broker.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
             "-subj", "/CN=127.0.0.1", cwd=directory)
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "broker.crt", "-days", "2", "-extfile", "broker.ext", cwd=directory)
    (directory / "broker-keystore.pem").write_text(
        (directory / "broker.key").read_text() + (directory / "broker.crt").read_text()
    )
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client-plain.key", "-out", "client.csr",
             "-subj", f"/CN={username}", cwd=directory)
    _openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "client.crt", "-days", "2", cwd=directory)
    _openssl("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", "client-plain.key", "-out", "client.key",
             "-passout", f"file:{key_password_file}", cwd=directory)
    for name in ("client-plain.key", "ca.key", "broker.key"):
        (directory / name).unlink()
    client = ClientFiles(
        ca=directory / "ca.pem",
        cert=directory / "client.crt",
        key=directory / "client.key",
        key_password_file=key_password_file,
        password_file=_write_secret(directory / "sasl.password", password),
        username=username,
        password=password,
        key_password=key_password,
    )
    return client, directory / "broker-keystore.pem"


def scram_sha512_credential(username: str, password: str) -> str:
    """The salted --add-scram form (RFC 5802 SaltedPassword), so the plain password never reaches kafka-storage."""
    salt = os.urandom(32)
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, SCRAM_ITERATIONS)
    return (
        f"SCRAM-SHA-512=[name={username},iterations={SCRAM_ITERATIONS},"
        f'salt="{base64.b64encode(salt).decode()}",saltedpassword="{base64.b64encode(salted).decode()}"]'
    )
