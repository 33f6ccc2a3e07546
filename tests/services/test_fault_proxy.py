"""FaultProxy is a real reverse proxy: real clients (boto3, s3fs, GDAL) pass through it to moto, no mocks."""

from __future__ import annotations

import errno
import http.client
import io
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import numpy as np
import pytest
import rasterio
from affine import Affine
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from rasterio.io import MemoryFile

from stacrrn.errors import ParameterError
from stacrrn.services import FaultProxy, ServiceError
from stacrrn.services.fault_proxy import FAULT_MODES, SLOW_DOWN_BODY


@pytest.fixture
def proxy(s3):
    with FaultProxy(s3.endpoint, failure_rate=0.0) as running:
        yield running


def client(proxy: FaultProxy, **config: object):
    return boto3.client("s3", endpoint_url=proxy.url, config=Config(**config) if config else None)


def raw(proxy: FaultProxy) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)


def test_clean_proxy_is_transparent_to_boto3(proxy, bucket) -> None:
    s3 = client(proxy)
    big = np.random.default_rng(1).integers(0, 256, 6 << 20, dtype=np.uint8).tobytes()
    s3.put_object(Bucket=bucket, Key="small.txt", Body=b"hello")
    s3.put_object(Bucket=bucket, Key="big.bin", Body=big)
    assert s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == big
    assert s3.head_object(Bucket=bucket, Key="big.bin")["ContentLength"] == len(big)
    ranged = s3.get_object(Bucket=bucket, Key="big.bin", Range="bytes=10-99")
    assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert ranged["Body"].read() == big[10:100]
    # multipart upload (POST create/complete, PUT parts), then a download in ranged parts
    transfer = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
    s3.upload_fileobj(io.BytesIO(big * 2), bucket, "multi.bin", Config=transfer)
    out = io.BytesIO()
    s3.download_fileobj(bucket, "multi.bin", out, Config=transfer)
    assert out.getvalue() == big * 2
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["big.bin", "multi.bin", "small.txt"]
    s3.delete_object(Bucket=bucket, Key="small.txt")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 2
    stats = proxy.stats()
    assert stats["requests"] >= 12  # the traffic really went through the proxy
    assert stats["failed_total"] == 0


def test_clean_proxy_serves_s3fs_and_gdal(proxy, bucket) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": proxy.url}, skip_instance_cache=True)
    fs.pipe(f"{bucket}/a/b.json", b'{"x": 1}')
    assert fs.cat(f"{bucket}/a/b.json") == b'{"x": 1}'
    seen = proxy.stats()["requests"]
    assert seen >= 2

    data = np.arange(2 * 200 * 300, dtype="uint16").reshape(2, 200, 300)
    profile = {"driver": "GTiff", "width": 300, "height": 200, "count": 2, "dtype": "uint16", "crs": "EPSG:32633"}
    with MemoryFile() as memory:
        with memory.open(transform=Affine(10, 0, 5e5, 0, -10, 6e6), tiled=True, **profile) as dst:
            dst.write(data)
        client(proxy).put_object(Bucket=bucket, Key="scene.tif", Body=memory.read())
    gdal = {k: proxy.env()[k] for k in ("AWS_S3_ENDPOINT", "AWS_HTTPS", "AWS_VIRTUAL_HOSTING")}
    assert gdal["AWS_S3_ENDPOINT"] == f"127.0.0.1:{proxy.port}"
    with (
        rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", **gdal),
        rasterio.open(f"/vsis3/{bucket}/scene.tif") as src,
    ):
        assert src.crs.to_epsg() == 32633
        np.testing.assert_array_equal(src.read(), data)
    assert proxy.stats()["requests"] > seen + 1  # GDAL went through the proxy too


def test_env_points_at_the_proxy(s3, proxy) -> None:
    env = proxy.env()
    assert env.keys() == s3.env().keys()
    assert env["AWS_ENDPOINT_URL"] == proxy.url == f"http://127.0.0.1:{proxy.port}"
    assert env["AWS_S3_ENDPOINT"] == f"127.0.0.1:{proxy.port}"
    assert {k: v for k, v in env.items() if "ENDPOINT" not in k} == {
        k: v for k, v in s3.env().items() if "ENDPOINT" not in k
    }


def statuses(proxy: FaultProxy, path: str, n: int) -> list[int]:
    """Status of ``n`` GETs on one keep-alive connection (a 503 must leave it usable)."""
    connection, seen = raw(proxy), []
    for _ in range(n):
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        if response.status == 503:
            assert body == SLOW_DOWN_BODY
            assert response.getheader("Content-Type") == "application/xml"
        seen.append(response.status)
    connection.close()
    return seen


def test_status_faults_rate_counters_and_seed(s3, bucket) -> None:
    s3_client = boto3.client("s3", endpoint_url=s3.endpoint)
    s3_client.put_object(Bucket=bucket, Key="k", Body=b"payload", ACL="public-read")
    path = f"/{bucket}/k"
    with FaultProxy(s3.endpoint, failure_rate=0.3, seed=7, modes=("status",)) as proxy:
        seen = statuses(proxy, path, 300)
        assert set(seen) == {200, 503}
        assert 0.2 <= seen.count(503) / 300 <= 0.4
        stats = proxy.stats()
        assert stats["requests"] == 300
        assert stats["failed"] == {"status": seen.count(503), "reset": 0, "truncate": 0}
        assert stats["failed_total"] == seen.count(503)
        proxy.reset_counters()
        assert proxy.stats() == {
            "requests": 0,
            "failed": dict.fromkeys(FAULT_MODES, 0),
            "failed_total": 0,
            "delayed": 0,
        }
        proxy.failure_rate = 1.0  # a 503 to a HEAD has no body: the next answer on the connection parses
        connection = raw(proxy)
        for method in ("HEAD", "GET"):
            connection.request(method, path)
            response = connection.getresponse()
            assert (response.status, response.read()) == (503, b"" if method == "HEAD" else SLOW_DOWN_BODY)
        connection.close()
    runs = []
    for seed in (7, 7, 8):
        with FaultProxy(s3.endpoint, failure_rate=0.3, seed=seed, modes=("status",)) as proxy:
            runs.append(statuses(proxy, path, 100))
    assert runs[0] == runs[1] == seen[:100]
    assert runs[2] != runs[0]


def test_boto3_survives_every_fault_mode(s3, bucket) -> None:
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 64 << 10, 200)
    payloads = {f"o{i:03d}": rng.integers(0, 256, n, dtype=np.uint8).tobytes() for i, n in enumerate(sizes)}
    with FaultProxy(s3.endpoint, failure_rate=0.2, seed=5, modes=FAULT_MODES) as proxy:
        s3_client = client(proxy, retries={"max_attempts": 10, "mode": "standard"}, max_pool_connections=50)

        def roundtrip(key: str) -> bytes:
            s3_client.put_object(Bucket=bucket, Key=key, Body=payloads[key])
            out = io.BytesIO()
            s3_client.download_fileobj(bucket, key, out)  # s3transfer retries a cut body, get_object() would not
            return out.getvalue()

        # 50 round trips at a time, in 50 threads so that botocore's back-off sleeps overlap; a batch
        # misses a mode now and then (truncate only hits GETs), so go on until every mode was seen.
        keys, got = list(payloads), dict[str, bytes]()
        with ThreadPoolExecutor(50) as pool:
            while len(got) < 50 or (min(proxy.stats()["failed"].values()) == 0 and len(got) < len(keys)):
                batch = keys[len(got) : len(got) + 50]
                got |= dict(zip(batch, pool.map(roundtrip, batch), strict=True))
        stats = proxy.stats()
    assert got == {key: payloads[key] for key in got}
    assert all(stats["failed"][mode] > 0 for mode in FAULT_MODES), stats
    assert stats["requests"] >= 3 * len(got)  # PUT, HEAD and GET per round trip, plus the retries
    assert 0.1 <= stats["failed_total"] / stats["requests"] <= 0.3


def test_reset_and_truncate_are_real_faults(s3, proxy, bucket) -> None:
    data = bytes(range(256)) * 100
    client(proxy).put_object(Bucket=bucket, Key="k", Body=data, ACL="public-read")
    proxy.failure_rate, proxy.modes = 1.0, ("reset",)
    connection = raw(proxy)
    with pytest.raises(ConnectionResetError) as reset:
        connection.request("GET", f"/{bucket}/k")
        connection.getresponse().read()
    assert reset.value.errno == errno.ECONNRESET  # a TCP reset, not an orderly close (RemoteDisconnected)
    connection.close()

    proxy.modes = ("truncate",)
    connection = raw(proxy)
    connection.request("GET", f"/{bucket}/k")
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Content-Length") == str(len(data))
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    assert cut.value.partial == data[: len(data) // 2]
    connection.close()

    connection = raw(proxy)  # drawn for a PUT, "truncate" drops the request unforwarded
    with pytest.raises(ConnectionError):
        connection.request("PUT", f"/{bucket}/never", body=b"x")
        connection.getresponse().read()
    connection.close()
    assert proxy.stats()["failed"] == {"status": 0, "reset": 2, "truncate": 1}
    assert "never" not in [
        o["Key"] for o in boto3.client("s3", endpoint_url=s3.endpoint).list_objects_v2(Bucket=bucket)["Contents"]
    ]


def test_paused_delays_and_chunked_uploads(s3, proxy, bucket) -> None:
    proxy.failure_rate, proxy.delay_rate, proxy.delay_s = 1.0, 1.0, 0.05
    with proxy.paused():
        connection = raw(proxy)  # a chunked request body is de-chunked and forwarded
        connection.request("PUT", f"/{bucket}/c", body=iter([b"hello ", b"chunked ", b"world"]), encode_chunked=True)
        assert connection.getresponse().read() == b""
        connection.close()
        assert client(proxy).get_object(Bucket=bucket, Key="c")["Body"].read() == b"hello chunked world"
        assert proxy.stats()["failed_total"] == proxy.stats()["delayed"] == 0
    assert (proxy.failure_rate, proxy.delay_rate) == (1.0, 1.0)
    proxy.failure_rate = 0.0
    client(proxy).head_object(Bucket=bucket, Key="c")
    assert proxy.stats()["delayed"] == 1  # the proxy's own count, not a clock


class _Framing(BaseHTTPRequestHandler):
    """An upstream that frames its answers unlike moto and echoes what it received."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        echo = json.dumps({"body": body.decode(), "headers": dict(self.headers)}).encode()
        if self.path == "/close":  # no Content-Length: the body ends when the connection closes
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(echo)
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in (echo[:10], echo[10:]):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture
def framing() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Framing)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("path", ["/chunked", "/close"])
def test_responses_are_reframed_and_host_kept(framing, path) -> None:
    with FaultProxy(framing, failure_rate=0.0) as proxy:
        connection = raw(proxy)
        for _ in range(2):  # the client's connection stays usable whatever the upstream did
            connection.putrequest("PUT", path, skip_host=True)
            connection.putheader("Host", "bucket.s3.example")
            connection.putheader("Connection", "keep-alive, X-Private")
            connection.putheader("X-Private", "hop")
            connection.putheader("Content-Length", "4")
            connection.endheaders(b"data")
            response = connection.getresponse()
            assert response.getheader("Transfer-Encoding") is None
            echo = json.loads(response.read())
            assert int(response.getheader("Content-Length", "0")) > 0
            assert echo["body"] == "data" and echo["headers"]["Host"] == "bucket.s3.example"
            assert "X-Private" not in echo["headers"]
        connection.close()


def test_bad_parameters_and_stop(s3) -> None:
    for bad in ({"upstream": "https://127.0.0.1:1"}, {"failure_rate": 1.5}, {"modes": ("explode",)}, {"modes": ()}):
        with pytest.raises(ParameterError):
            FaultProxy(**{"upstream": s3.endpoint, **bad})
    proxy = FaultProxy(s3.endpoint)
    with pytest.raises(ServiceError):
        _ = proxy.url
    proxy.start()
    connection = raw(proxy)
    connection.request("GET", "/")
    connection.getresponse().read()
    port = proxy.port
    proxy.stop()  # returns although a keep-alive connection is open (it is closed, below)
    with pytest.raises(ConnectionError):  # the idle keep-alive connection was closed too
        connection.request("GET", "/")
        connection.getresponse()
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/")
    proxy.stop()
