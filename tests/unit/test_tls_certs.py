"""The local broker's TLS material: a CA, a server chain naming the host, private keys 0600."""

from __future__ import annotations

import ipaddress
import ssl

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from bus.adapters.broker import LocalBroker
from bus.adapters.tls_certs import ensure_certificates


def test_chain_names_the_host_and_verifies(tmp_path):
    files = ensure_certificates(tmp_path, ["127.0.0.1", "localhost"])
    certs = x509.load_pem_x509_certificates(files.server_cert.read_bytes())
    server, ca = certs
    assert ca.subject == server.issuer
    ca.public_key().verify(server.signature, server.tbs_certificate_bytes,
                           ec.ECDSA(server.signature_hash_algorithm))
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    for key in (files.server_key, files.keystore):
        assert oct(key.stat().st_mode & 0o777) == "0o600"
    # Python's TLS stack (what kafka-python uses) accepts the CA file as a trust anchor.
    ssl.create_default_context(cafile=str(files.ca_cert))


def test_made_once(tmp_path):
    first = ensure_certificates(tmp_path, ["127.0.0.1"]).ca_cert.read_bytes()
    assert ensure_certificates(tmp_path, ["127.0.0.1"]).ca_cert.read_bytes() == first


def test_broker_properties_with_tls(tmp_path):
    broker = LocalBroker(tmp_path, port=19092, controller_port=19093, secure=True, tls=True)
    props = broker.write_config().read_text()
    assert broker.tls_port == 19094 and broker.tls_bootstrap == "127.0.0.1:19094"
    assert "listeners=CLIENT://127.0.0.1:19092,TLS://127.0.0.1:19094,CONTROLLER://" in props
    assert "CLIENT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT,TLS:SASL_SSL" in props
    assert "listener.name.tls.scram-sha-512.sasl.jaas.config=" in props
    assert broker.ca_file.exists()
    plain = LocalBroker(tmp_path / "plain", port=19192).write_config().read_text()
    assert "TLS" not in plain
