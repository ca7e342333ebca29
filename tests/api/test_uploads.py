"""Uploads: streamed to the content-addressed store, type checked by content, size-limited, safe loaders."""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tests.api.conftest import GERMAN, UPLOAD_LIMIT, assert_problem, upload


def _stored_files(api) -> list:
    root = api.data_dir / "artifacts"
    return [p for p in root.rglob("*") if p.is_file() and p.parent.name != "tmp"]


def _tmp_files(api) -> list:
    return list((api.data_dir / "artifacts" / "tmp").iterdir())


def test_csv_upload_hash_size_columns_and_dedup(api):
    raw = (GERMAN / "german_credit.csv").read_bytes()
    r = upload(api.client, "/v1/datasets", raw, api.a.h("auditor"), "german.csv")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["sha256"] == hashlib.sha256(raw).hexdigest()
    assert body["size"] == len(raw)
    assert body["format"] == "csv" and body["filename"] == "german.csv"
    assert datetime.fromisoformat(body["created_at"]).utcoffset() == timedelta(0)  # RFC 3339 with offset
    assert body["meta"]["columns"] == next(csv.reader(io.StringIO(raw.decode())))
    # stored under its digest, byte for byte
    stored = api.data_dir / "artifacts" / body["sha256"][:2] / body["sha256"]
    assert stored.read_bytes() == raw
    # the same bytes again (raw body this time) -> the same id, 200, still one stored copy
    r2 = api.client.post(
        "/v1/datasets?filename=again.csv",
        headers={**api.a.h("auditor"), "content-type": "application/octet-stream"},
        content=raw,
    )
    assert r2.status_code == 200 and r2.json()["id"] == body["id"]
    assert len(_stored_files(api)) == 1
    assert (
        api.client.get(f"/v1/datasets/{body['id']}", headers=api.a.h("viewer")).json()["sha256"]
        == body["sha256"]
    )


def test_parquet_upload_detected_by_content_not_name(api, tmp_path):
    df = pd.DataFrame({"x": np.arange(50, dtype=float), "y": ["a", "b"] * 25})
    path = tmp_path / "frame.csv"  # misleading name: the content is Parquet
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    r = upload(api.client, "/v1/datasets", path.read_bytes(), api.a.h("auditor"), "frame.csv")
    assert r.status_code == 201, r.text
    meta = pq.read_metadata(path)
    assert r.json()["format"] == "parquet"
    assert r.json()["meta"] == {"columns": ["x", "y"], "rows": meta.num_rows}


def test_oversized_upload_is_413_and_leaves_nothing(api):
    big = b"a,b\n" + b"1,2\n" * (UPLOAD_LIMIT // 4 + 10)
    assert len(big) > UPLOAD_LIMIT
    r = upload(api.client, "/v1/datasets", big, api.a.h("auditor"), "big.csv")
    assert_problem(r, 413, str(UPLOAD_LIMIT))

    # raw body without Content-Length (chunked): refused while streaming, partial file removed
    def gen():
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    r2 = api.client.post(
        "/v1/datasets",
        headers={**api.a.h("auditor"), "content-type": "application/octet-stream"},
        content=gen(),
    )
    assert_problem(r2, 413, "size limit")
    assert _stored_files(api) == [] and _tmp_files(api) == []


def test_malformed_dataset_uploads_are_422_with_reason(api):
    h = api.a.h("auditor")
    assert_problem(upload(api.client, "/v1/datasets", b"", h, "e.csv"), 422, "empty")
    assert_problem(upload(api.client, "/v1/datasets", b"\x00\x01PK\x03", h, "x.csv"), 422, "binary")
    assert_problem(upload(api.client, "/v1/datasets", b"a,b\n\xff\xfe,1\n", h, "l1.csv"), 422, "not UTF-8")
    assert_problem(
        upload(api.client, "/v1/datasets", b"a,b,c\n", h, "hdr.csv"), 422, "header row and at least one"
    )
    assert_problem(
        upload(api.client, "/v1/datasets", b"a,a\n1,2\n", h, "dup.csv"), 422, "duplicate column names: 'a'"
    )
    assert_problem(upload(api.client, "/v1/datasets", b"PAR1 truncated", h, "t.parquet"), 422, "footer")
    # multipart without a part named 'file'
    r = api.client.post("/v1/datasets", headers=h, files={"data": ("x.csv", b"a,b\n1,2\n")})
    assert_problem(r, 422, "no part named 'file'")
    # a broken multipart body
    r = api.client.post(
        "/v1/datasets", headers={**h, "content-type": "multipart/form-data"}, content=b"--x\r\n\r\nnope"
    )
    assert_problem(r, 422, "boundary")
    assert _stored_files(api) == [] and _tmp_files(api) == []


def test_model_upload_reports_kind_and_features(api):
    import skops.io as sio

    raw = (GERMAN / "model.skops").read_bytes()
    r = upload(api.client, "/v1/models", raw, api.a.h("auditor"), "model.skops")
    assert r.status_code == 201, r.text
    est = sio.load(GERMAN / "model.skops", trusted=sio.get_untrusted_types(file=GERMAN / "model.skops"))
    assert r.json()["format"] == "skops"
    assert r.json()["sha256"] == hashlib.sha256(raw).hexdigest()
    assert r.json()["meta"]["features"] == list(est.feature_names_in_)


def test_pickle_model_is_415_and_never_unpickled(api, tmp_path):
    import pickle

    from tests.inputs._evil import PickleBomb

    sentinel = tmp_path / "pwned"
    payload = pickle.dumps(PickleBomb(str(sentinel)), protocol=4)
    r = upload(api.client, "/v1/models", payload, api.a.h("auditor"), "model.skops")  # the name lies
    body = assert_problem(r, 415, "pickle")
    assert body["title"] == "Unsupported Media Type"
    assert not sentinel.exists()
    assert str(api.data_dir) not in r.text  # no server paths in errors


def test_untrusted_skops_is_422_listing_types(api, tmp_path, monkeypatch):
    import skops.io as sio

    from tests.inputs._evil import SENTINEL_ENV, Evil

    sentinel = tmp_path / "ran"
    monkeypatch.setenv(SENTINEL_ENV, str(sentinel))
    bad = tmp_path / "evil.skops"
    sio.dump({"model": Evil()}, bad)
    r = upload(api.client, "/v1/models", bad.read_bytes(), api.a.h("auditor"), "evil.skops")
    body = assert_problem(r, 422, "allow-list", "tests.inputs._evil.Evil")
    assert body["untrusted_types"] == sorted(sio.get_untrusted_types(file=bad))
    assert not sentinel.exists()


def test_garbage_model_is_422(api):
    r = upload(api.client, "/v1/models", b"hello world, not a model\n", api.a.h("auditor"), "m.onnx")
    assert_problem(r, 422)
    assert _stored_files(api) == []


def test_client_file_names_are_labels_only(api):
    """Paths, control characters and over-long names from the client never reach the database raw."""
    h = api.a.h("auditor")
    raw = {**h, "content-type": "application/octet-stream"}
    r = api.client.post(
        "/v1/datasets?filename=..%2F..%2Fetc%2Fevil%07na%00me.csv", headers=raw, content=b"a,b\n1,2\n"
    )
    assert r.status_code == 201 and r.json()["filename"] == "evilname.csv"
    r = api.client.post(
        "/v1/datasets?filename=" + "x" * 1000 + ".csv",
        headers=raw,
        content=b"c,d\n3,4\n",
    )
    assert r.status_code == 201 and r.json()["filename"] == "x" * 300
    r = upload(api.client, "/v1/datasets", b"e,f\n5,6\n", h, "C:\\Users\\me\\data.csv")
    assert r.json()["filename"] == "data.csv"


def test_a_rejected_upload_never_deletes_bytes_others_use(api, german_uploaded):
    """The store is shared: re-uploading a downloaded audit.json or PDF as a dataset, or another
    organisation's dataset as a model, is refused without deleting the stored bytes."""
    import json

    from tests.api.conftest import finish_fake, german_spec_body

    c, a, b = api.client, api.a, api.b
    ds, mdl = german_uploaded
    job = c.post("/v1/audits", headers=a.h("auditor"), json=german_spec_body(ds, mdl)).json()["id"]
    result = {"schema_version": "1", "sections": {}}
    finish_fake(api, job, result, pdf=b"%PDF-1.7 one line\n")
    assert_problem(upload(c, "/v1/datasets", json.dumps(result).encode(), b.h("auditor"), "a.json"), 422)
    assert_problem(upload(c, "/v1/datasets", b"%PDF-1.7 one line\n", b.h("auditor"), "r.pdf"), 422)
    csv_bytes = (GERMAN / "german_credit.csv").read_bytes()
    assert_problem(upload(c, "/v1/models", csv_bytes, b.h("auditor"), "m.onnx"), 422)
    assert c.get(f"/v1/audits/{job}", headers=a.h("viewer")).json()["result"] == result
    assert c.get(f"/v1/audits/{job}/report.pdf", headers=a.h("viewer")).content == b"%PDF-1.7 one line\n"
    stored = api.data_dir / "artifacts" / hashlib.sha256(csv_bytes).hexdigest()[:2]
    assert (stored / hashlib.sha256(csv_bytes).hexdigest()).read_bytes() == csv_bytes
