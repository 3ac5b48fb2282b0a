"""Throw-away certificates for the loopback TLS servers of the transport and
credentials tests: a CA, a server certificate for ``api.test``, ``localhost`` and
127.0.0.1, a client certificate, and an unrelated CA. EC keys keep it fast."""

from __future__ import annotations

import datetime
import functools
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_NAME = "api.test"
CLIENT_NAME = "reporter-client"


@dataclass(frozen=True)
class Pki:
    ca_pem: bytes
    other_ca_pem: bytes
    server_cert_pem: bytes
    server_key_pem: bytes
    client_cert_pem: bytes
    client_key_pem: bytes

    def server_context(self, directory: Path, *, client_ca: bool = False) -> ssl.SSLContext:
        """A server context; with ``client_ca`` it requires a client certificate."""
        chain = directory / "server.pem"
        chain.write_bytes(self.server_cert_pem + self.server_key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain)
        if client_ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cadata=self.ca_pem.decode())
        return context

    def client_context(self, *, ca_pem: bytes | None = None) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=(ca_pem or self.ca_pem).decode())


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    extensions: list[x509.ExtensionType],
) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    # Key identifiers, and a critical BasicConstraints: what Python 3.13's default
    # context (VERIFY_X509_STRICT) requires of a chain.
    for extension in [
        *extensions,
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
        x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
    ]:
        critical = isinstance(extension, x509.BasicConstraints)
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = _key()
    ca = x509.BasicConstraints(ca=True, path_length=None)
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    return key, _certificate(name, key, name, key, [ca, usage])


@functools.cache
def make_pki() -> Pki:
    """One set of certificates per test session."""
    ca_key, ca_pem = _ca("test-ca")
    _, other_ca_pem = _ca("other-ca")
    server_key, client_key = _key(), _key()
    server_names = x509.SubjectAlternativeName(
        [
            x509.DNSName(SERVER_NAME),
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
    )
    server = _certificate(
        "test-server",
        server_key,
        "test-ca",
        ca_key,
        [server_names, x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])],
    )
    client = _certificate(
        CLIENT_NAME,
        client_key,
        "test-ca",
        ca_key,
        [x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])],
    )
    return Pki(ca_pem, other_ca_pem, server, _pem(server_key), client, _pem(client_key))


def common_name(cert: dict[str, Any]) -> str:
    """The subject's common name of a certificate as ``ssl`` decodes it."""
    return "".join(
        value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"
    )


def ca_names(tls: ssl.SSLContext | None) -> list[str]:
    """The common names of the CAs a context trusts."""
    assert tls is not None
    return [common_name(cert) for cert in tls.get_ca_certs()]
