"""A certificate for https://localhost, made on first use: Office loads add-ins over HTTPS only.

``ensure()`` keeps, in the user's config folder (``config_dir()``), a small certificate
authority of this machine's own and a certificate for localhost, 127.0.0.1 and ::1 signed
by it (the way mkcert and Office's own dev certificates work): the person trusts the
authority once (``trust_command()`` prints the one command for their system) and every
certificate made later, when one nears its end, is trusted with it. The authority is
name-constrained to those three names, so its key, were it ever copied, could vouch for
no other site. Keys are files only the user can read. Made with ``cryptography``.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..write.text import write_text

#: The names the certificate is for, and the only ones its authority may vouch for.
DNS_NAMES = ("localhost",)
IP_ADDRESSES = ("127.0.0.1", "::1")
#: macOS refuses a TLS server certificate valid for more than 825 days; renewed with a
#: month to go
LEAF_DAYS, RENEW_DAYS, AUTHORITY_DAYS = 820, 30, 3650
AUTHORITY_NAME = "sheetdl localhost authority"


@dataclass(frozen=True)
class Files:
    """Where the certificate and its authority are kept."""

    folder: Path

    @property
    def authority(self) -> Path:
        return self.folder / "localhost-authority.pem"

    @property
    def authority_key(self) -> Path:
        return self.folder / "localhost-authority-key.pem"

    @property
    def certificate(self) -> Path:
        return self.folder / "localhost.pem"

    @property
    def key(self) -> Path:
        return self.folder / "localhost-key.pem"


def config_dir() -> Path:
    """sheetdl's config folder: ``SHEETDL_CONFIG_DIR`` if set, else the system's place for
    an application's settings."""
    if os.environ.get("SHEETDL_CONFIG_DIR"):
        return Path(os.environ["SHEETDL_CONFIG_DIR"])
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "sheetdl"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "sheetdl"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "sheetdl"


def trust_command(authority: Path, platform: str = sys.platform) -> str:
    """The command that makes this system (and its browsers) trust ``authority``."""
    if platform == "darwin":
        return ("security add-trusted-cert -r trustRoot -k ~/Library/Keychains/login.keychain-db "
                f'"{authority}"')
    if platform == "win32":
        return f'certutil -user -addstore Root "{authority}"'
    return (f'sudo cp "{authority}" /usr/local/share/ca-certificates/sheetdl-localhost.crt && '
            "sudo update-ca-certificates  (Chrome and Firefox keep their own list: "
            f'certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n sheetdl -i "{authority}")')


def ensure(folder: Path | None = None, now: datetime.datetime | None = None) -> tuple[Files, bool]:
    """The certificate files, made (or the certificate renewed) when missing, unreadable or
    within ``RENEW_DAYS`` of their end; and whether the authority is new (it must then be
    trusted)."""
    try:
        from cryptography import x509
    except ImportError:
        from ..extras import pip_install

        raise RuntimeError(f"sheetdl serve --https needs cryptography: {pip_install('addin')}") \
            from None
    files = Files(Path(folder) if folder is not None else config_dir())
    now = now or datetime.datetime.now(datetime.timezone.utc)
    files.folder.mkdir(parents=True, exist_ok=True)
    authority = _load(files.authority, files.authority_key, now, x509)
    new_authority = authority is None
    if new_authority:
        authority = _make_authority(now)
        write_text(files.authority_key, _key_pem(authority[1]), mode=0o600)
        write_text(files.authority, _cert_pem(authority[0]))
    if new_authority or _load(files.certificate, files.key, now, x509, authority[0]) is None:
        cert, key = _make_leaf(authority, now)
        write_text(files.key, _key_pem(key), mode=0o600)
        write_text(files.certificate, _cert_pem(cert))
    return files, new_authority


def _load(cert_path: Path, key_path: Path, now, x509, issuer=None):
    """(certificate, key) from the files if both read, the certificate is good for another
    ``RENEW_DAYS`` and (given ``issuer``) was signed by it; else None."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = load_pem_private_key(key_path.read_bytes(), password=None)
        if issuer is not None:
            cert.verify_directly_issued_by(issuer)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return None
    if cert.public_key() != key.public_key():
        return None
    if cert.not_valid_after_utc - now < datetime.timedelta(days=RENEW_DAYS):
        return None
    return cert, key


def _names(x509):
    return [x509.DNSName(n) for n in DNS_NAMES] + [
        x509.IPAddress(ipaddress.ip_address(a)) for a in IP_ADDRESSES]


def _make_authority(now):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sheetdl"),
                      x509.NameAttribute(NameOID.COMMON_NAME, AUTHORITY_NAME)])
    permitted = [x509.DNSName(n) for n in DNS_NAMES] + [
        x509.IPAddress(ipaddress.ip_network(a)) for a in IP_ADDRESSES]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=AUTHORITY_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.NameConstraints(permitted_subtrees=permitted,
                                                excluded_subtrees=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _make_leaf(authority, now):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    issuer, issuer_key = authority
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DNS_NAMES[0])]))
            .issuer_name(issuer.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(min(now + datetime.timedelta(days=LEAF_DAYS),
                                 issuer.not_valid_after_utc))
            .add_extension(x509.SubjectAlternativeName(_names(x509)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer_key.public_key()), critical=False)
            .sign(issuer_key, hashes.SHA256()))
    return cert, key


def _cert_pem(cert) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.PEM).decode()


def _key_pem(key) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()
