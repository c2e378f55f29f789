"""An app behind HTTPS: its certificate is checked, and `SSL_CERT_FILE` names the CA to trust."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from simulator.results.folder import read_results
from tests.servers.json_answer import serving


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, signed by its own key (as a company CA's would be, for the test)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test app")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.fixture
def https_app(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    cert_file, key_file = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    with serving(lambda body: {"answer": f"over TLS: {json.loads(body)['question']}"}, tls=context) as (url, _):
        yield url, cert_file


def _run(tmp_path: Path, url: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, Path]:
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(
        "version: 1\n"
        f"target: {{url: '{url}/score', format: promptflow,\n"
        "  promptflow: {input: question, history: chat_history, output: answer}, retry: {attempts: 1}}\n"
        "simulations:\n"
        "  - {name: tls, persona: jane, task: ask, turns: [hello]}\n"
    )
    out = tmp_path / "out"
    base = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "run", str(manifest), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, **env},
    )
    return done, out


def test_an_app_whose_certificate_is_not_trusted_is_refused_and_the_error_says_why(
    tmp_path: Path, https_app: tuple[str, Path]
) -> None:
    url, _ = https_app
    done, out = _run(tmp_path, url, {})
    assert done.returncode == 3, done.stderr
    [result] = read_results(out / "conversations.jsonl")
    message = result["meta_data"]["error"]["message"]
    assert "unreachable" in message and "certificate" in message.lower(), message


def test_ssl_cert_file_names_the_ca_to_trust(tmp_path: Path, https_app: tuple[str, Path]) -> None:
    url, cert_file = https_app
    done, out = _run(tmp_path, url, {"SSL_CERT_FILE": str(cert_file)})
    assert done.returncode == 0, done.stderr
    [result] = read_results(out / "conversations.jsonl")
    assert result["conversation"][1]["response"] == "over TLS: hello"
