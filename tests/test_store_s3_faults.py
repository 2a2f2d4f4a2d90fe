"""A sick S3 endpoint fails a command in seconds with one clear StoreError (issue 24, finding 7).

Real sockets on 127.0.0.1: a "black hole" that accepts connections and never answers, and a
TCP proxy in front of moto's server that resets every connection once the first data object
of an upload is being sent (and from then on), so the clean-up after the failure fails too.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import struct
import threading
import time

import pytest
from test_store import listing_checksum, soundings

from hubkit.cli import main
from hubkit.errors import StoreError
from hubkit.store import S3Limits, Store

pytestmark = pytest.mark.s3


class BlackHole:
    """A TCP server on 127.0.0.1 that accepts every connection and never sends a byte."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.accepted += 1
            self.held.append(conn)

    def close(self):
        self.sock.close()
        for conn in self.held:
            conn.close()


def _reset(conn: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer sees a connection reset (RST), not a clean close."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    except OSError:
        pass


class ResettingProxy:
    """A TCP proxy to ``upstream`` that, once armed, turns sick when a request PUTs a Zarr
    object: it then resets that connection and every later one, until :meth:`heal`."""

    def __init__(self, upstream: str):
        host, port = upstream.split("//")[1].split(":")
        self.upstream = (host, int(port))
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.armed = threading.Event()
        self.sick = threading.Event()
        self.resets = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def heal(self):
        self.armed.clear()
        self.sick.clear()

    def _serve(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if self.sick.is_set():
                self.resets += 1
                _reset(client)
                continue
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False),
                             daemon=True).start()

    def _pump(self, src, dst, from_client):
        try:
            while True:
                data = src.recv(65536)
                if (from_client and self.armed.is_set() and data.startswith(b"PUT ")
                        and b".zarr/" in data[:2048]):
                    self.sick.set()
                if not data or self.sick.is_set():
                    break
                dst.sendall(data)
        except OSError:
            pass
        if self.sick.is_set():
            self.resets += 1
            _reset(src)
            _reset(dst)
        else:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


@pytest.fixture
def black_hole(s3_server, monkeypatch):
    hole = BlackHole()
    monkeypatch.setenv("FSSPEC_S3_ENDPOINT_URL", hole.url)
    yield hole
    hole.close()


def test_a_black_hole_fails_within_the_set_limits(black_hole, monkeypatch):
    monkeypatch.setenv("HUBKIT_S3_READ_TIMEOUT", "1")
    monkeypatch.setenv("HUBKIT_S3_ATTEMPTS", "2")
    t0 = time.monotonic()
    with pytest.raises(StoreError) as err:
        Store("s3://hubkit-bucket/x")
    elapsed = time.monotonic() - t0
    message = str(err.value)
    assert black_hole.url in message and "timed out waiting 1.0 s" in message
    assert "2 attempt(s)" in message and "HUBKIT_S3_READ_TIMEOUT" in message
    assert "--s3-read-timeout" in message
    assert 2.0 <= elapsed < 6.0, elapsed  # two tries of one second, a 0.1 s back-off
    assert black_hole.accepted >= 1


@pytest.mark.slow
def test_a_black_hole_fails_within_the_default_limits(black_hole, monkeypatch):
    """The defaults: 3 attempts of 10 s, i.e. about 30 s (it was 418 s)."""
    for var in ("HUBKIT_S3_READ_TIMEOUT", "HUBKIT_S3_ATTEMPTS", "HUBKIT_S3_CONNECT_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    assert S3Limits() == S3Limits(connect_timeout=5.0, read_timeout=10.0, attempts=3)
    t0 = time.monotonic()
    with pytest.raises(StoreError, match="timed out waiting 10.0 s for an answer \\(3 att"):
        Store("s3://hubkit-bucket/x")
    elapsed = time.monotonic() - t0
    assert 30.0 <= elapsed < 36.0, elapsed


def test_cli_commands_on_a_black_hole_end_with_the_clear_error(black_hole, capsys):
    limits = ["--s3-read-timeout", "0.5", "--s3-attempts", "1"]
    t0 = time.monotonic()
    assert main(["doctor", "--store", "s3://hubkit-bucket/x", *limits]) == 1  # not usable: exit 1
    out = capsys.readouterr().out
    assert "NOT usable" in out and "timed out waiting 0.5 s" in out and black_hole.url in out
    assert main(["search", "--store", "s3://hubkit-bucket/x", *limits]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: store s3://hubkit-bucket/x: the S3 endpoint")
    assert "Traceback" not in err and "--s3-read-timeout" in err
    assert time.monotonic() - t0 < 20.0


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_bad_limits_are_explained(s3_server, monkeypatch, value):
    monkeypatch.setenv("HUBKIT_S3_READ_TIMEOUT", value)
    with pytest.raises(StoreError, match="HUBKIT_S3_READ_TIMEOUT"):
        Store("s3://whatever-bucket/x")
    assert S3Limits.from_env(read_timeout=5).read_timeout == 5  # an option overrides it
    monkeypatch.delenv("HUBKIT_S3_READ_TIMEOUT")
    with pytest.raises(StoreError, match="--s3-attempts"):
        S3Limits.from_env(attempts=0)


def test_a_connection_reset_mid_upload_is_one_clear_error(s3_bucket, s3_server, caplog):
    proxy = ResettingProxy(s3_server)
    try:
        store = Store(f"s3://{s3_bucket}/hub", endpoint_url=proxy.url,
                      s3_limits=S3Limits(read_timeout=5.0, attempts=2))
        kept = store.put(soundings(seed=1), inputs=["kept"], step="t")
        assert not proxy.sick.is_set()
        proxy.armed.set()
        direct = Store(f"s3://{s3_bucket}/hub")  # straight to moto, to look at the result
        before = listing_checksum(direct)
        with caplog.at_level(logging.WARNING, logger="hubkit.store"), \
                pytest.raises(StoreError) as err:
            store.put(soundings(seed=2), inputs=["lost"], step="t")
        message = str(err.value)
        assert proxy.sick.is_set() and proxy.resets >= 2
        assert "writing the data of oco2-soundings-" in message
        assert proxy.url in message and "connection failed (2 attempt(s))" in message
        assert "could not be removed" in message and "fsck --repair" in message
        assert any("could not remove the partial data" in r.message for r in caplog.records)
        # nothing partial is visible; after the endpoint heals the upload simply works again
        assert [h.id for h in direct.search()] == [kept.id]
        proxy.heal()
        again = store.put(soundings(seed=2), inputs=["lost"], step="t")
        assert sorted(h.id for h in direct.search()) == sorted([kept.id, again.id])
        report = direct.fsck(repair=True, min_age=0)
        assert not report.damaged_items and not report.broken_items
        assert direct.fsck(min_age=0).clean
        assert listing_checksum(direct) != before
    finally:
        proxy.close()


def test_storage_options_carry_the_limits_to_workers(s3_bucket, monkeypatch):
    monkeypatch.setenv("HUBKIT_S3_READ_TIMEOUT", "7")
    store = Store(f"s3://{s3_bucket}/hub")
    opts = store.storage_options
    assert opts["config_kwargs"]["read_timeout"] == 7.0
    assert opts["config_kwargs"]["retries"]["total_max_attempts"] == 3
    monkeypatch.delenv("HUBKIT_S3_READ_TIMEOUT")
    worker = Store(store.url, **opts)  # how the chain reopens the store on a Dask worker
    assert worker.storage_options["config_kwargs"]["read_timeout"] == 7.0
    assert os.environ.get("HUBKIT_S3_READ_TIMEOUT") is None
    again = pickle.loads(pickle.dumps(store.fs))  # the guarded file system travels too
    assert again.ls(s3_bucket) == store.fs.ls(s3_bucket)
