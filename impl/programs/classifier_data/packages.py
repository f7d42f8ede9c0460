"""The registry packages the classifiers are trained from: pinned versions and sha256 (fixtures/packages.py fetches).

Nothing of their text is committed to the kit: ``fetch`` downloads each package with its registry's own client
(``pip download``, ``apt-get download``) into a cache directory, refuses a file whose sha256 is not the pinned one,
and unpacks its regular files once. A file already in the cache is used as it is (after the same check), so that a
machine without the registries can be given the files by hand.
"""

from __future__ import annotations

from pathlib import Path

from fixtures.packages import Package, PackageError, deb
from fixtures.packages import fetch as fetch_packages
from impl.programs.cli import UserError

# One wheel for every machine: gensim's wheels are per platform, and its test data is the same in each.
GENSIM_WHEEL = ("--only-binary", ":all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
                "--implementation", "cp")


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
    deb("fortunes", "1:1.99.1-7.3",
        "41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5", "BSD-4-clause", "fortune cookies"),
    deb("fortunes-min", "1:1.99.1-7.3",
        "9eed5b45064e41133dae0967cf3a17588ad77c014fcc7bf1527fa3ea48e44d07", "BSD-4-clause", "fortune cookies"),
    deb("fortunes-bofh-excuses", "1.2-3",
        "c7bbd6b6aa6e30117753d30b859500691a049cf88393feaa05f15fbc8d825b67", "public domain", "BOFH excuses"),
    deb("debian-reference-en", "2.100",
        "9f31d3a17df505de09689ca255512ea58c1fc47c59bb1b0c7bf1c23362e9743f", "GPL-2+",
        "the Debian Reference (HTML)"),
    deb("debian-policy", "4.6.2.0",
        "ef9d01b625c3b87c3a845c2cd1b66f1a16e9240b2b9e5bee53472a00e8457a39", "GPL-2+", "the Debian Policy Manual"),
    deb("doc-debian", "11.3+nmu1",
        "b9bff49f22b334cb6fedc071d81669e72cc2fa0dcd65e110785f69d9941f2773", "GPL-2+ / verbatim copying",
        "the Debian constitution, social contract and manifesto"),
    deb("gnu-standards", "2022.03.23-0.1",
        "2087dda531c69d8505856a45e0334746f3f25211a237c95d375eed13a7d8c201", "GFDL-1.3+",
        "the GNU coding and maintainer standards"),
    deb("python3.11-doc", "3.11.2-6+deb12u9",
        "5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be", "PSF-2.0",
        "the Python 3.11 documentation (HTML)"),
]}


def fetch(names: list[str], cache: Path) -> dict[str, Path]:
    """Each named package downloaded (or found) in ``cache/downloads``, checked, unpacked: name -> its root."""
    try:
        return fetch_packages([PACKAGES[name] for name in names], cache)
    except PackageError as error:
        raise UserError(str(error)) from None
