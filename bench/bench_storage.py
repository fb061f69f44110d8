"""Asset storage benchmark: one partition of an audience-like frame written and read through the ParquetIOManager's
storage, on a local folder and on S3 (moto in server mode on localhost, as the tests use it).

    python bench/bench_storage.py [--rows 100000] [--repeat 5]

For each store: the median wall time of writing the partition (serialised in memory, then a rename locally or one
upload on S3) and of reading it back as the IO manager's load does (`identity()`, then the parquet read), and the
file's size. moto keeps objects in its own process's memory and speaks HTTP on loopback, so the S3 figures show
the cost of the protocol and the client, not of a real network or disk. Needs the test extra (moto). Not part of
the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import pandas as pd


def audience(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    ids = np.arange(rows)
    return pd.DataFrame({
        "external_id": ids.astype(str), "email": [f"person{i}@example{i % 97}.nl" for i in ids],
        "first_name": [f"Voornaam{i % 1000}" for i in ids], "last_name": [f"Achternaam{i % 5000}" for i in ids],
        "function": rng.choice(["Inkoper", "Directeur", "Adviseur", None], rows),
        "newsletter": rng.random(rows) < 0.7, "changed": pd.Timestamp("2026-11-22", tz="UTC")})


def measure(storage, df: pd.DataFrame, repeat: int) -> dict:
    path = storage.path("spotler_audience", "2026-11-22-06:00.parquet")
    writes, reads = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        storage.write_parquet(path, df)
        writes.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert storage.identity(path) is not None
        assert len(storage.read_parquet(path)) == len(df)
        reads.append(time.perf_counter() - started)
    return {"write_s": statistics.median(writes), "read_s": statistics.median(reads),
            "mb": storage.info(path).size / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from moto.server import ThreadedMotoServer

    from afas_pipeline.lib.storage import open_storage

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update({"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "eu-west-1",
                       "AWS_EC2_METADATA_DISABLED": "true"})
    try:
        import pyarrow.fs as pafs

        pafs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"], region="eu-west-1",
                          allow_bucket_creation=True).create_dir("bench")
        df = audience(args.rows)
        with tempfile.TemporaryDirectory() as folder:
            results = {"local": measure(open_storage(folder), df, args.repeat),
                       "s3 (moto)": measure(open_storage("s3://bench/assets"), df, args.repeat)}
    finally:
        server.stop()
    for store, r in results.items():
        print(f"{store:10} {args.rows} rows, {r['mb']:.1f} MB: write {r['write_s'] * 1000:.0f} ms, "
              f"read {r['read_s'] * 1000:.0f} ms (median of {args.repeat})")
    local, s3 = results["local"], results["s3 (moto)"]
    print(f"s3/local: write x{s3['write_s'] / local['write_s']:.1f}, read x{s3['read_s'] / local['read_s']:.1f}")


if __name__ == "__main__":
    main()
