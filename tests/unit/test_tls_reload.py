"""shoal.runtime.tls.CertificateFiles: what gRPC's fetcher hands out as the files change."""

import os
from pathlib import Path

import pytest

from shoal.cli.certs import issue, make_ca, write_pem
from shoal.runtime.tls import CertificateFiles, ServerTls, TlsConfigError


def test_unchanged_files_keep_the_configuration_and_a_replaced_pair_is_served(
    tmp_path: Path,
) -> None:
    ca = make_ca()
    files = write_pem(tmp_path, "server", issue(ca, "shoal-shard"))
    reloader = CertificateFiles(ServerTls(files.cert, files.key))
    assert reloader.fetch() is None
    new = write_pem(tmp_path / "new", "server", issue(ca, "shoal-shard"))
    os.replace(new.key, files.key)
    os.replace(new.cert, files.cert)
    assert reloader.fetch() is not None
    assert reloader.fetch() is None  # once


def test_a_rotation_caught_half_way_keeps_serving_the_old_pair(tmp_path: Path) -> None:
    ca = make_ca()
    files = write_pem(tmp_path, "server", issue(ca, "shoal-shard"))
    reloader = CertificateFiles(ServerTls(files.cert, files.key))
    new = write_pem(tmp_path / "new", "server", issue(ca, "shoal-shard"))
    os.replace(new.cert, files.cert)  # the certificate is new, its key not yet
    assert reloader.fetch() is None
    os.replace(new.key, files.key)
    assert reloader.fetch() is not None


def test_a_certificate_that_is_not_its_keys_is_refused_at_start(tmp_path: Path) -> None:
    ca = make_ca()
    first = write_pem(tmp_path, "first", issue(ca, "shoal-shard"))
    second = write_pem(tmp_path, "second", issue(ca, "shoal-shard"))
    with pytest.raises(TlsConfigError, match="not the certificate of its key"):
        CertificateFiles(ServerTls(first.cert, second.key))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(TlsConfigError, match="not a PEM"):
        CertificateFiles(ServerTls(tmp_path / "junk.pem", first.key))
