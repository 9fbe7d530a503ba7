"""`sheetdl serve --https`: a localhost certificate made on first use, and sheetdl's own
manifest with only https URLs, each answering on the running server (xlwings Server under
the PolyForm Noncommercial terms, XLWINGS_LICENSE_KEY=noncommercial)."""
import datetime
import importlib.util
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import pytest

from sheetdl.addin import certs, manifest
from conftest import ROOT, free_port

if importlib.util.find_spec("xlwings_server") is None:
    pytest.skip("xlwings Server is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def https_server(tmp_path_factory):
    config = tmp_path_factory.mktemp("config")
    port = free_port()
    env = dict(os.environ, XLWINGS_LICENSE_KEY="noncommercial", PYTHONPATH=str(ROOT),
               SHEETDL_CONFIG_DIR=str(config))
    log = config / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sheetdl.cli", "serve", "--https",
                                 "--port", str(port)], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    base = f"https://localhost:{port}"
    context = None
    for _ in range(120):
        try:
            if context is None:
                context = ssl.create_default_context(
                    cafile=str(certs.Files(config).authority))
            urllib.request.urlopen(base + "/xlwings/custom-functions-meta", timeout=2,
                                   context=context)
            break
        except (OSError, ssl.SSLError):
            if proc.poll() is not None:
                pytest.fail(f"sheetdl serve --https exited: {log.read_text()}")
            context = None if not certs.Files(config).authority.exists() else context
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("sheetdl serve --https did not start in 60 s")
    yield base, context, config, port, log
    proc.terminate()
    proc.wait(timeout=20)


def get(url, context, **headers):
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as r:
            return r.status, r.headers.get("content-type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("content-type", ""), e.read()


def test_the_manifest_names_sheetdl_and_every_url_is_https_on_this_server(https_server):
    base, context, _, _, log = https_server
    status, kind, body = get(base + "/manifest", context)
    assert status == 200 and kind.startswith("application/xml")
    root = ET.fromstring(body)
    ns = {"o": "http://schemas.microsoft.com/office/appforoffice/1.1"}
    assert root.find("o:DisplayName", ns).get("DefaultValue") == "sheetdl"
    assert root.find("o:ProviderName", ns).text == "sheetdl"
    assert root.find("o:Id", ns).text == manifest.ADDIN_ID
    assert "xlwings" not in body.decode().lower().replace("xlwings/custom-functions", "")
    urls = {v for e in root.iter() for v in [*e.attrib.values(), e.text or ""] if "://" in v}
    assert urls and all(u.startswith(base + "/") or u == base for u in urls), urls
    for url in sorted(urls - {base}):  # each one the server answers
        status, kind, content = get(url, context)
        assert status == 200, url
        if url.endswith(".png"):
            assert kind == "image/png" and content.startswith(b"\x89PNG")
    assert "trust its authority once" in log.read_text()


def test_the_written_manifest_is_the_served_one(https_server, tmp_path):
    base, context, _, port, _ = https_server
    out = tmp_path / "manifest.xml"
    r = subprocess.run([sys.executable, "-m", "sheetdl.cli", "addin", "manifest", "-o", str(out),
                        "--port", str(port)], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == get(base + "/manifest", context)[2]
    out.write_text("a person's file")  # never overwritten without --force
    r = subprocess.run([sys.executable, "-m", "sheetdl.cli", "addin", "manifest", "-o", str(out)],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 2 and "--force" in r.stderr and out.read_text() == "a person's file"


def test_a_call_over_https_answers_and_the_host_check_holds(https_server):
    base, context, _, _, _ = https_server
    body = json.dumps({"client": "Office.js", "func_name": "softmax", "args": [[[0.0, 0.0]], None],
                       "version": "0.37.8", "runtime": "1.4"}).encode()
    req = urllib.request.Request(base + "/xlwings/custom-functions-call", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60, context=context) as r:
        assert r.status == 200 and json.loads(r.read())["result"] == [[0.5, 0.5]]
    status, _, text = get(base + "/manifest", context, Host="evil.example")
    assert status == 403 and b"not allowed" in text


def test_the_certificate_is_for_localhost_only_and_renewed_under_the_same_authority(tmp_path):
    from cryptography import x509

    files, new = certs.ensure(tmp_path)
    assert new and oct(files.key.stat().st_mode & 0o777) == "0o600"
    assert oct(files.authority_key.stat().st_mode & 0o777) == "0o600"
    authority = x509.load_pem_x509_certificate(files.authority.read_bytes())
    limits = authority.extensions.get_extension_for_class(x509.NameConstraints)
    assert limits.critical and {str(n.value) for n in limits.value.permitted_subtrees} == {
        "localhost", "127.0.0.1/32", "::1/128"}
    leaf = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    leaf.verify_directly_issued_by(authority)
    days = (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days
    assert days <= 825  # macOS's limit for a TLS server certificate
    first = files.certificate.read_bytes()
    assert certs.ensure(tmp_path) == (files, False) and files.certificate.read_bytes() == first
    # near its end the certificate is made again, signed by the authority already trusted
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days - 10)
    assert certs.ensure(tmp_path, now=later) == (files, False)
    renewed = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    assert renewed.serial_number != leaf.serial_number
    renewed.verify_directly_issued_by(authority)
    files.key.write_text("garbage")  # an unreadable key: a new pair, same authority
    assert certs.ensure(tmp_path) == (files, False)
    assert x509.load_pem_x509_certificate(files.authority.read_bytes()) == authority


@pytest.mark.parametrize("platform,tool", [("darwin", "security add-trusted-cert"),
                                           ("win32", "certutil -user -addstore Root"),
                                           ("linux", "update-ca-certificates")])
def test_the_trust_command_names_the_authority_file(tmp_path, platform, tool):
    line = certs.trust_command(tmp_path / "a.pem", platform)
    assert tool in line and str(tmp_path / "a.pem") in line
