"""A private CA and a server certificate for the local broker's TLS listener.

Only for the local broker: a production cluster gets its certificates from a real PKI.
Everything is generated with `cryptography` into one directory, once; the private keys
are 0600. Clients trust `ca.pem` (`--ssl-cafile`) and check the host name, so the server
certificate names the listener's host (IP and DNS subject alternative names).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bus.adapters.private_file import write_private

VALIDITY = dt.timedelta(days=825)


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    """Server certificate followed by the CA certificate (the chain Kafka presents)."""
    server_key: Path
    """PKCS#8, unencrypted, 0600: Kafka's PEM keystore reads it directly."""

    @property
    def keystore(self) -> Path:
        """Key and chain in one file, the form of Kafka's `ssl.keystore.type=PEM`."""
        return self.server_key.with_name("server.keystore.pem")

    def exist(self) -> bool:
        return all(p.exists() for p in (self.ca_cert, self.server_cert, self.server_key,
                                        self.keystore))


def tls_files(directory: Path) -> TlsFiles:
    return TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "EPA bus local broker"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _alt_names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def ensure_certificates(directory: Path, hosts: list[str]) -> TlsFiles:
    """Create the CA and server certificate once; reuse them afterwards."""
    files = tls_files(directory)
    if files.exist():
        return files
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("EPA bus local CA")).issuer_name(_name("EPA bus local CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0])).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(_alt_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    chain = cert.public_bytes(pem) + ca_cert.public_bytes(pem)
    write_private(files.server_key, key_pem)
    write_private(files.keystore, key_pem + chain)
    files.server_cert.write_bytes(chain)
    files.ca_cert.write_bytes(ca_cert.public_bytes(pem))
    # The CA key is not kept: nothing else will ever be signed by this CA.
    return files


__all__ = ["TlsFiles", "ensure_certificates", "tls_files"]
