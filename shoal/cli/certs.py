"""A local certificate authority and a certificate per Shoal service, made with
the `cryptography` package: what `shoal up --secure`, the TLS tests and the
security benchmark run with.

Every certificate names its role (shoal.runtime.tls: `shoal-coordinator`,
`shoal-shard`, `shoal-embedder`) as its common name and as a DNS name, next to
the hosts it is served at, and may serve and act as a client: a shard shows
the same certificate to its peers that it serves. Keys are ECDSA P-256.
"""

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shoal.runtime.tls import COORDINATOR_IDENTITY, EMBEDDER_IDENTITY, SHARD_IDENTITY

#: Hosts every local certificate is valid for.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")

DEFAULT_DAYS = 365


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@dataclass(frozen=True)
class PemFiles:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Shoal"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _validity(days: int) -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)


CA_KEY_USAGE = x509.KeyUsage(
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
BOTH_ENDS = x509.ExtendedKeyUsage(
    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
)


def make_ca(common_name: str = "Shoal local CA", days: int = DEFAULT_DAYS) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    not_before, not_after = _validity(days)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(certificate, key)


def _alt_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def issue(
    ca: Issued, identity: str, hosts: Sequence[str] = LOCAL_HOSTS, days: int = DEFAULT_DAYS
) -> Issued:
    """A certificate for `identity` (common name and DNS name) served at `hosts`,
    for both ends of a TLS connection."""
    key = ec.generate_private_key(ec.SECP256R1())
    not_before, not_after = _validity(days)
    names = [_alt_name(identity), *(_alt_name(host) for host in hosts if host != identity)]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(identity))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(BOTH_ENDS, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(certificate, key)


def write_pem(directory: Path, name: str, issued: Issued) -> PemFiles:
    """`name`.pem and `name`-key.pem in `directory` (the key readable by its owner only)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = PemFiles(directory / f"{name}.pem", directory / f"{name}-key.pem")
    files.cert.write_bytes(issued.cert_pem())
    files.key.touch(mode=0o600)
    files.key.write_bytes(issued.key_pem())
    return files


@dataclass(frozen=True)
class LocalPki:
    """A CA and one certificate per role, as files in `directory`."""

    directory: Path
    ca: Path
    coordinator: PemFiles
    shard: PemFiles
    embedder: PemFiles

    @classmethod
    def create(cls, directory: Path, hosts: Sequence[str] = LOCAL_HOSTS) -> "LocalPki":
        ca = make_ca()
        directory.mkdir(parents=True, exist_ok=True)
        ca_path = directory / "ca.pem"
        ca_path.write_bytes(ca.cert_pem())
        return cls(
            directory=directory,
            ca=ca_path,
            coordinator=write_pem(directory, "coordinator", issue(ca, COORDINATOR_IDENTITY, hosts)),
            shard=write_pem(directory, "shard", issue(ca, SHARD_IDENTITY, hosts)),
            embedder=write_pem(directory, "embedder", issue(ca, EMBEDDER_IDENTITY, hosts)),
        )

    @classmethod
    def existing(cls, directory: Path) -> "LocalPki | None":
        """The files `create` made in `directory` before, or None if any is missing."""
        pki = cls(
            directory=directory,
            ca=directory / "ca.pem",
            coordinator=PemFiles(directory / "coordinator.pem", directory / "coordinator-key.pem"),
            shard=PemFiles(directory / "shard.pem", directory / "shard-key.pem"),
            embedder=PemFiles(directory / "embedder.pem", directory / "embedder-key.pem"),
        )
        pairs = (pki.coordinator, pki.shard, pki.embedder)
        paths = [pki.ca, *(path for pair in pairs for path in (pair.cert, pair.key))]
        return pki if all(path.exists() for path in paths) else None

    def server_args(self, files: PemFiles, client_ca: bool) -> list[str]:
        """The TLS flags of a service serving `files` and calling the others with them."""
        args = ["--tls-cert", str(files.cert), "--tls-key", str(files.key)]
        args += ["--cluster-ca", str(self.ca)]
        if client_ca:
            args += ["--tls-client-ca", str(self.ca)]
        return args
