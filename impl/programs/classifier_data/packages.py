"""The registry packages the classifiers are trained from: pinned versions, sha256-checked, cached, unpacked.

Nothing of their text is committed to the kit: ``fetch`` downloads each package with its registry's own client
(``pip download``, ``apt-get download``) into a cache directory, refuses a file whose sha256 is not the pinned one,
and unpacks its regular files once. A file already in the cache is used as it is (after the same check), so that a
machine without the registries can be given the files by hand.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from impl.programs.cli import UserError

# One wheel for every machine: gensim's wheels are per platform, and its test data is the same in each.
GENSIM_WHEEL = ("--only-binary", ":all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
                "--implementation", "cp")


@dataclass(frozen=True)
class Package:
    registry: str  # "pypi" or "debian" (bookworm)
    name: str
    version: str
    filename: str  # as the registry's client saves it
    sha256: str
    licence: str
    holds: str  # what the kit reads from it
    pip_options: tuple[str, ...] = ("--only-binary", ":all:")


PACKAGES = {p.name: p for p in [
    Package("pypi", "gensim", "4.4.0",
            "gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
            "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8", "LGPL-2.1 (its test data: "
            "Wikipedia CC BY-SA 3.0)", "test data: an English Wikipedia excerpt, the Lee news corpus, 200 Usenet "
            "posts", GENSIM_WHEEL),
    Package("pypi", "vaderSentiment", "3.3.2", "vaderSentiment-3.3.2.tar.gz",
            "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9", "MIT",
            "Hutto & Gilbert (ICWSM 2014) data: tweets, movie-review, Amazon-review and NYT-editorial snippets",
            ("--no-binary", ":all:")),
    Package("pypi", "alt-profanity-check", "1.9.1", "alt_profanity_check-1.9.1-py3-none-any.whl",
            "cccb8ce072306bac21188670777a25cfb1de978aa8c7a93c8e4a43c03b3945c3", "MIT",
            "a linear SVM trained on Jigsaw and Davidson et al. human labels (the silver labels' teacher)"),
    Package("debian", "fortunes", "1:1.99.1-7.3", "fortunes_1%3a1.99.1-7.3_all.deb",
            "41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5", "BSD-4-clause", "fortune cookies"),
    Package("debian", "fortunes-min", "1:1.99.1-7.3", "fortunes-min_1%3a1.99.1-7.3_all.deb",
            "9eed5b45064e41133dae0967cf3a17588ad77c014fcc7bf1527fa3ea48e44d07", "BSD-4-clause", "fortune cookies"),
    Package("debian", "fortunes-bofh-excuses", "1.2-3", "fortunes-bofh-excuses_1.2-3_all.deb",
            "c7bbd6b6aa6e30117753d30b859500691a049cf88393feaa05f15fbc8d825b67", "public domain", "BOFH excuses"),
    Package("debian", "debian-reference-en", "2.100", "debian-reference-en_2.100_all.deb",
            "9f31d3a17df505de09689ca255512ea58c1fc47c59bb1b0c7bf1c23362e9743f", "GPL-2+",
            "the Debian Reference (HTML)"),
    Package("debian", "debian-policy", "4.6.2.0", "debian-policy_4.6.2.0_all.deb",
            "ef9d01b625c3b87c3a845c2cd1b66f1a16e9240b2b9e5bee53472a00e8457a39", "GPL-2+", "the Debian Policy Manual"),
    Package("debian", "doc-debian", "11.3+nmu1", "doc-debian_11.3+nmu1_all.deb",
            "b9bff49f22b334cb6fedc071d81669e72cc2fa0dcd65e110785f69d9941f2773", "GPL-2+ / verbatim copying",
            "the Debian constitution, social contract and manifesto"),
    Package("debian", "gnu-standards", "2022.03.23-0.1", "gnu-standards_2022.03.23-0.1_all.deb",
            "2087dda531c69d8505856a45e0334746f3f25211a237c95d375eed13a7d8c201", "GFDL-1.3+",
            "the GNU coding and maintainer standards"),
    Package("debian", "python3.11-doc", "3.11.2-6+deb12u9", "python3.11-doc_3.11.2-6+deb12u9_all.deb",
            "5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be", "PSF-2.0",
            "the Python 3.11 documentation (HTML)"),
]}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_clients(packages: list[Package], cache: Path) -> None:
    """Before any download: the clients the missing files need are there."""
    missing = [p for p in packages if not (cache / "downloads" / p.filename).exists()]
    if any(p.registry == "debian" for p in missing) and shutil.which("apt-get") is None:
        names = ", ".join(p.filename for p in missing if p.registry == "debian")
        raise UserError(f"apt-get is not available to download {names}: put these files in {cache / 'downloads'}")


def download(package: Package, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if package.registry == "pypi":
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *package.pip_options,
                   "--dest", str(directory), f"{package.name}=={package.version}"]
    else:
        command = ["apt-get", "download", "-qq", f"{package.name}={package.version}"]
    done = subprocess.run(command, cwd=directory, capture_output=True, text=True, check=False)
    path = directory / package.filename
    if done.returncode or not path.exists():
        hint = " (run apt-get update first?)" if package.registry == "debian" else ""
        last = (done.stderr.strip().splitlines() or ["no file"])[-1]
        raise UserError(f"could not download {package.name} {package.version}{hint}: {last}")
    return path


def unpack(package: Package, archive: Path, target: Path) -> None:
    """The archive's regular files under ``target`` (links and devices skipped: nothing here reads them)."""
    temp = target.with_name(target.name + ".partial")
    shutil.rmtree(temp, ignore_errors=True)
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel:
            wheel.extractall(temp)
    else:
        with open_tar(archive) as tar:
            for member in tar:
                relative = PurePosixPath(member.name)
                if member.isfile() and ".." not in relative.parts and not relative.is_absolute():
                    (temp / relative).parent.mkdir(parents=True, exist_ok=True)
                    (temp / relative).write_bytes(tar.extractfile(member).read())
    temp.rename(target)


def open_tar(archive: Path) -> tarfile.TarFile:
    """An sdist's tarball, or a .deb's data.tar.* (a .deb is an ar archive: 60-byte headers, 2-byte alignment)."""
    if not archive.name.endswith(".deb"):
        return tarfile.open(archive)
    data = archive.read_bytes()
    position = 8  # after "!<arch>\n"
    while position < len(data):
        name, size = data[position:position + 16].decode().strip(), int(data[position + 48:position + 58])
        if name.startswith("data.tar"):
            return tarfile.open(fileobj=io.BytesIO(data[position + 60:position + 60 + size]))
        position += 60 + size + size % 2
    raise UserError(f"{archive} is not a Debian package: no data.tar member")


def fetch(names: list[str], cache: Path) -> dict[str, Path]:
    """Each named package downloaded (or found) in ``cache/downloads``, checked, unpacked: name -> its root."""
    packages = [PACKAGES[name] for name in names]
    check_clients(packages, cache)
    roots = {}
    for package in packages:
        archive = cache / "downloads" / package.filename
        if not archive.exists():
            archive = download(package, archive.parent)
        if sha256(archive) != package.sha256:
            raise UserError(f"{archive}: sha256 {sha256(archive)} is not the pinned {package.sha256}; remove the "
                            "file to download it again")
        roots[package.name] = cache / "unpacked" / package.filename
        if not roots[package.name].exists():
            roots[package.name].parent.mkdir(parents=True, exist_ok=True)
            unpack(package, archive, roots[package.name])
    return roots
