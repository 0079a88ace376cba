"""The cluster's own certificate authority, for the hops inside a Pitlane cluster that `pitlane up` runs:
NATS (and any other server of ours that speaks TLS) gets a server certificate signed by it, and every
client verifies the server against it.

Made with `cryptography` on first start under the data directory and kept there, so a restart keeps the
same CA (clients configured with its file go on trusting the cluster). Private keys are written 0600.
Caddy's gateway has a CA of its own (`tls internal`); this one never leaves the machine's loopback hops.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
CA_LIFETIME = datetime.timedelta(days=3650)
LEAF_LIFETIME = datetime.timedelta(days=825)
# A leaf that expires sooner than this, or does not name what it must, is issued again at start.
RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True)
class IssuedCertificate:
    cert_file: Path
    key_file: Path


class ClusterCa:
    """A CA kept in `directory` (ca.crt, ca.key): created when absent, loaded when present."""

    def __init__(self, directory: Path, *, common_name: str = "Pitlane cluster CA") -> None:
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.cert_file = self.directory / CA_CERT
        key_file = self.directory / CA_KEY
        if self.cert_file.exists() and key_file.exists():
            self._key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
            self._cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
            return
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(key_file, _key_pem(key))
        self.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._key, self._cert = key, cert

    def server_certificate(
        self, name: str, *, dns_names: tuple[str, ...] = ("localhost",), ips: tuple[str, ...] = ("127.0.0.1",)
    ) -> IssuedCertificate:
        """`<name>.crt` and `<name>.key` beside the CA, for a server reached by these names and addresses;
        the existing pair is kept while it is valid for long enough and names exactly these."""
        issued = IssuedCertificate(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        if issued.cert_file.exists() and issued.key_file.exists():
            existing = x509.load_pem_x509_certificate(issued.cert_file.read_bytes())
            if self._still_good(existing, dns_names, ips):
                return issued
        key = ec.generate_private_key(ec.SECP256R1())
        alternative_names: list[x509.GeneralName] = [x509.DNSName(dns) for dns in dns_names]
        alternative_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(min(now + LEAF_LIFETIME, self._cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._cert.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
            .sign(self._key, hashes.SHA256())  # type: ignore[arg-type]
        )
        _write_private(issued.key_file, _key_pem(key))
        issued.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return issued

    def _still_good(self, cert: x509.Certificate, dns_names: tuple[str, ...], ips: tuple[str, ...]) -> bool:
        if cert.issuer != self._cert.subject or cert.not_valid_after_utc - _now() < RENEW_BEFORE:
            return False
        try:
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return False
        has_dns = set(names.get_values_for_type(x509.DNSName)) == set(dns_names)
        has_ips = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == set(ips)
        return has_dns and has_ips


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_private(path: Path, content: bytes) -> None:
    """Created 0600 from the start: the key is never readable by others, not even for a moment."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)
    path.chmod(0o600)
