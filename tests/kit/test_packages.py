"""The one pinned-package helper (fixtures/packages.py) that the web fixtures, train-classifier and the pipeline
benchmark's crawl share: a file is taken from the given folder or the cache before any client is needed, refused
unless its sha256 is the pinned one, unpacked once (regular files only); train-classifier turns its errors into its
one-line UserError. Offline: the packages here are built in the test."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import zipfile

import pytest

from fixtures import packages
from fixtures.packages import Package, PackageError, deb, fetch
from fixtures.web import debian


def ar_member(name: str, data: bytes) -> bytes:
    header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
    return header + data + (b"\n" if len(data) % 2 else b"")


def make_deb(path, files: dict[str, bytes], link: str | None = None) -> str:
    """A .deb (an ar archive: debian-binary, control.tar.gz, data.tar.xz) holding ``files``; its sha256."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        if link:
            info = tarfile.TarInfo(f"./{link}")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    control = io.BytesIO()
    with tarfile.open(fileobj=control, mode="w:gz"):
        pass
    path.write_bytes(b"!<arch>\n" + ar_member("debian-binary", b"2.0\n")
                     + ar_member("control.tar.gz", control.getvalue()) + ar_member("data.tar.xz", data.getvalue()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def no_clients(monkeypatch):
    """Neither apt-get nor pip may run: every file must come from the folder given or the cache."""
    monkeypatch.setattr(shutil, "which", lambda name: None)

    def refuse(*args, **kwargs):
        raise AssertionError(f"a client ran: {args}")
    monkeypatch.setattr(packages.subprocess, "run", refuse)


def test_a_given_deb_is_checked_and_unpacked_once(tmp_path, no_clients):
    given = tmp_path / "given"
    given.mkdir()
    digest = make_deb(given / "toy-doc_1.0_all.deb", {"usr/share/doc/toy/a.html": b"<p>a</p>"}, link="usr/evil")
    package = deb("toy-doc", "1.0", digest)
    roots = fetch([package], tmp_path / "cache", given=given)
    root = roots["toy-doc"]
    assert root == tmp_path / "cache" / "unpacked" / "toy-doc_1.0_all.deb"
    assert (root / "usr/share/doc/toy/a.html").read_bytes() == b"<p>a</p>"
    assert not (root / "usr/evil").exists()  # links are skipped
    (root / "usr/share/doc/toy/a.html").write_bytes(b"kept")  # unpacked once: a second fetch leaves it
    assert fetch([package], tmp_path / "cache", given=given) == roots
    assert (root / "usr/share/doc/toy/a.html").read_bytes() == b"kept"


def test_a_wheel_in_the_cache_needs_no_client(tmp_path, no_clients):
    downloads = tmp_path / "cache" / "downloads"
    downloads.mkdir(parents=True)
    with zipfile.ZipFile(downloads / "toy-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("toy/data.txt", "text")
    digest = hashlib.sha256((downloads / "toy-1.0-py3-none-any.whl").read_bytes()).hexdigest()
    package = Package("pypi", "toy", "1.0", "toy-1.0-py3-none-any.whl", digest)
    assert (fetch([package], tmp_path / "cache")["toy"] / "toy/data.txt").read_text() == "text"


def test_other_bytes_than_the_pinned_are_refused(tmp_path, no_clients):
    make_deb(tmp_path / "toy-doc_1.0_all.deb", {"a": b"a"})
    with pytest.raises(PackageError, match="is not the pinned 0000.* of toy-doc 1.0; remove the file"):
        fetch([deb("toy-doc", "1.0", "0" * 64)], tmp_path / "cache", given=tmp_path)
    assert not (tmp_path / "cache" / "unpacked").exists()


def test_a_missing_file_without_apt_get_says_where_to_put_it(tmp_path, no_clients):
    with pytest.raises(PackageError, match=r"apt-get is not available to download toy-doc_1%3a1.0_all.deb: put"):
        fetch([deb("toy-doc", "1:1.0", "0" * 64)], tmp_path / "cache")


def test_a_failed_download_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/apt-get")
    monkeypatch.setattr(packages.subprocess, "run", lambda *a, **k: type("Done", (), {
        "returncode": 100, "stderr": "E: Can't find a source to download version '9' of 'toy-doc'"})())
    with pytest.raises(PackageError, match=r"could not download toy-doc 9 \(run apt-get update first\?\): E: Can't"):
        fetch([deb("toy-doc", "9", "0" * 64)], tmp_path / "cache")


def test_train_classifier_and_the_web_fixtures_share_it(tmp_path, no_clients):
    from impl.programs.classifier_data import packages as classifier_packages
    from impl.programs.cli import UserError

    assert isinstance(classifier_packages.PACKAGES["gensim"], Package)
    assert all(isinstance(p, Package) and p.registry == "debian" for p in debian.PACKAGES.values())
    assert debian.PACKAGES["debian-faq"].filename == "debian-faq_11.1_all.deb"
    with pytest.raises(UserError, match="apt-get is not available to download fortunes_1%3a1.99.1-7.3_all.deb"):
        classifier_packages.fetch(["fortunes"], tmp_path)
    with pytest.raises(SystemExit, match="apt-get is not available.*refusing to build"):
        debian.fetch(tmp_path)
