"""The test control plane's PKI, generated with `cryptography`: one CA, the apiserver's serving
certificate, a client certificate per component, and the ServiceAccount signing key pair.

Client identities follow kubeadm's: the admin is in `system:masters`, the controller-manager and
the scheduler use their bootstrap RBAC users, and the node is `system:node:NAME` in
`system:nodes`, so the Node authorizer and NodeRestriction treat the process kubelet as a node.
Keys are ECDSA P-256 (fast to make); the ServiceAccount key is RSA, as most issuers use.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service's ClusterIP (allocated, never routed)
API_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
_VALID = datetime.timedelta(days=7)


@dataclass(frozen=True)
class Pair:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path


def _name(common: str, org: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
    if org:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(parts)


def _write_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


class Pki:
    """Writes every file into `folder` on construction; paths are attributes."""

    def __init__(self, folder: Path, node_name: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        now = datetime.datetime.now(datetime.UTC)
        self._not_before = now - datetime.timedelta(minutes=5)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = _name("kubelambda-test-ca")
        self._ca_name = ca_name
        ca = (
            self._builder(ca_name, self._ca_key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
            .sign(self._ca_key, hashes.SHA256())
        )
        self.ca = folder / "ca.crt"
        self.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        _write_key(self._ca_key, folder / "ca.key")
        self.apiserver = self._issue(
            "apiserver",
            _name("kube-apiserver"),
            server=True,
            ips=("127.0.0.1", SERVICE_IP),
            dns=API_DNS_NAMES,
        )
        self.admin = self._issue("admin", _name("kubelambda-admin", "system:masters"))
        self.controller_manager = self._issue(
            "controller-manager", _name("system:kube-controller-manager")
        )
        self.scheduler = self._issue("scheduler", _name("system:kube-scheduler"))
        self.node = self._issue("node", _name(f"system:node:{node_name}", "system:nodes"))
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.sa_key = folder / "sa.key"
        _write_key(sa_key, self.sa_key)
        self.sa_pub = folder / "sa.pub"
        self.sa_pub.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def node_pair(self, node_name: str) -> Pair:
        """The client certificate of another node (`system:node:NAME` in `system:nodes`)."""
        return self._issue(f"node-{node_name}", _name(f"system:node:{node_name}", "system:nodes"))

    def _builder(self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey) -> Any:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(getattr(self, "_ca_name", subject))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_before + _VALID)
        )

    def _issue(
        self,
        stem: str,
        subject: x509.Name,
        *,
        server: bool = False,
        ips: tuple[str, ...] = (),
        dns: tuple[str, ...] = (),
    ) -> Pair:
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            self._builder(subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
            names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self._ca_key, hashes.SHA256())
        pair = Pair(self.folder / f"{stem}.crt", self.folder / f"{stem}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, pair.key)
        return pair
