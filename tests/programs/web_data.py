"""Helpers of the filter-web-data tests: configs, a WARC writer for synthetic cases, a tiny fastText model, output
trees, and a Ray cluster of this machine (``ray start --head`` on 127.0.0.1, torn down after)."""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from fixtures import FIXTURES_DIR
from tests.harness.helpers import REPO

WEB = FIXTURES_DIR / "data" / "web"
WARCS = [WEB / f"{name}.warc.gz" for name in ("debian-docs", "malformed", "broken-headers", "truncated-gzip", "prose")]

# MinHash at a threshold below the fixture's near duplicates (Jaccard 0.943-0.990) and far above unrelated pages.
DEDUP = """
[[filters]]
name = "extract"
[[filters]]
name = "mask_pii"
[[filters]]
name = "minhash"
threshold = 0.9
"""
# Every stage: the one the resume and engine tests run.
FULL = DEDUP.replace('[[filters]]\nname = "minhash"',
                     '[[filters]]\nname = "exact_line_dedup"\n[[filters]]\nname = "minhash"')


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes): what "byte-identical outputs" compares."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def program(argv: list[str], **popen) -> subprocess.Popen:
    """filter-web-data in a subprocess of its own session (its whole process group can be killed)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **popen.pop("env", {})}
    return subprocess.Popen([sys.executable, "-m", "impl.programs.filter_web_data", *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **popen)


def finish(process: subprocess.Popen, timeout: float = 300) -> str:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert process.returncode == 0, err[-3000:]
    return out


# A WARC file written by hand: each record its own gzip member, as crawlers write them.
def warc_record(kind: str, url: str | None, block: bytes, content_type: str, record_id: bool = True) -> bytes:
    headers = [b"WARC/1.0", f"WARC-Type: {kind}".encode()]
    if record_id:
        headers.append(f"WARC-Record-ID: <urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, url or 'none')}>".encode())
    headers.append(b"WARC-Date: 2024-01-01T00:00:00Z")
    if url:
        headers.append(f"WARC-Target-URI: {url}".encode())
    headers += [f"Content-Type: {content_type}".encode(), f"Content-Length: {len(block)}".encode()]
    return gzip.compress(b"\r\n".join(headers) + b"\r\n\r\n" + block + b"\r\n\r\n", mtime=0)


def response(url: str, body: bytes, content_type: str | None = "text/html; charset=utf-8",
             status: str = "200 OK") -> bytes:
    http = [f"HTTP/1.1 {status}".encode()] + ([f"Content-Type: {content_type}".encode()] if content_type else [])
    block = b"\r\n".join(http) + b"\r\n\r\n" + body
    return warc_record("response", url, block, "application/http; msgtype=response")


def page(*paragraphs: str) -> bytes:
    return ("<html><body>" + "".join(f"<p>{p}</p>" for p in paragraphs) + "</body></html>").encode()


def write_warc(path: Path, records: list[bytes]) -> Path:
    path.write_bytes(b"".join(records))
    return path


def train_fasttext(path: Path, lines: list[str]) -> Path:
    """A tiny supervised fastText model, trained in a fresh interpreter. fasttext-numpy2 0.10.4's training ends in
    "Encountered NaN" every time with its defaults on data this small (dim 100, 2M buckets, no subwords), and at
    random in a process that has trained before; dim 32, 100K buckets and subwords of 2-5 characters in a fresh
    process trained every time here (the settings of the kit's own classifiers)."""
    data = path.with_suffix(".txt")
    data.write_text("\n".join(lines) + "\n")
    script = ("import sys, fasttext\n"
              "model = fasttext.train_supervised(sys.argv[1], lr=0.1, epoch=25, thread=1, verbose=0, minCount=1,\n"
              "                                  dim=32, bucket=100_000, minn=2, maxn=5)\n"
              "model.save_model(sys.argv[2])\n")
    errors = []
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", script, str(data), str(path)], capture_output=True, text=True,
                              timeout=120)
        if done.returncode == 0:
            return path
        errors.append(done.stderr.strip().splitlines()[-1:])
    raise RuntimeError(f"fastText training failed in three fresh processes: {errors}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Ray on loopback without token authentication (Ray 2.52+ enables it; a test cluster needs none), and a SIGTERM
# that ends the node at once instead of draining it for 30 s.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@contextlib.contextmanager
def ray_cluster(num_cpus: int = 2, timeout: float = 120):
    """A Ray head node of ``num_cpus`` on 127.0.0.1 (its own process group and temp dir); yields its address."""
    ray = Path(sys.executable).parent / "ray"
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    env = {**os.environ, **RAY_ENV, "PYTHONPATH": str(REPO)}
    log = open(Path(temp) / "head.log", "w")
    head = subprocess.Popen([str(ray), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port",
                             str(port), "--num-cpus", str(num_cpus), "--object-store-memory", str(200 * 2**20),
                             "--include-dashboard", "false", "--temp-dir", temp, "--disable-usage-stats"],
                            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while "Ray runtime started" not in (Path(temp) / "head.log").read_text():
            assert head.poll() is None, (Path(temp) / "head.log").read_text()
            assert time.monotonic() < deadline, "the Ray head did not start"
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # the node's processes are all in its group
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)  # what ignored SIGTERM
        log.close()
        shutil.rmtree(temp, ignore_errors=True)
