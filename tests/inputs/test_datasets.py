"""Dataset loading: delimiter sniffing, BOM, Parquet, and every unreadable-file error."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from service.errors import InputError
from service.inputs.datasets import apply_dtypes, read_dataset

ROWS = [["a", "b", "label"], ["1", "x", "0"], ["2", "y", "1"], ["3.5", "z", "0"]]


def _write(path, delim, *, bom=False):
    text = "\n".join(delim.join(r) for r in ROWS) + "\n"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


@pytest.mark.parametrize("delim", [",", ";", "\t", "|"])
@pytest.mark.parametrize("bom", [False, True])
def test_csv_delimiters_and_bom(tmp_path, delim, bom):
    p = _write(tmp_path / "d.csv", delim, bom=bom)
    ds = read_dataset(p)
    assert list(ds.frame.columns) == ["a", "b", "label"]
    assert ds.frame["a"].tolist() == [1.0, 2.0, 3.5]
    assert ds.delimiter == delim
    assert ds.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()
    assert (ds.rows, ds.columns) == (3, 3)


def test_parquet_detected_by_content(tmp_path):
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    p = tmp_path / "data.csv"  # misleading name: content decides
    df.to_parquet(p)
    ds = read_dataset(p)
    assert ds.format == "parquet"
    pd.testing.assert_frame_equal(ds.frame, df)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "the file is empty"),
        (b"   \n\n", "the file is empty"),
        (b"a,b,c\n", "header but no data rows"),
        (b"a,b,a\n1,2,3\n", "duplicate column names: 'a'"),
        (b"a,b\n\xff\xfe\x00\x01,2\n", "NUL bytes"),
        (b"a,b\n\xe9t\xe9,2\n", "not UTF-8"),
        (b"a,b\n1,2\n3,4,5,6\n", "cannot parse as CSV"),
    ],
)
def test_bad_csv_files(tmp_path, content, match):
    p = tmp_path / "bad.csv"
    p.write_bytes(content)
    with pytest.raises(InputError, match=match) as info:
        read_dataset(p)
    assert str(p) in str(info.value)


def test_duplicate_columns_in_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "dup.parquet"
    pq.write_table(pa.table([pa.array([1]), pa.array([2])], names=["x", "x"]), p)
    with pytest.raises(InputError, match="duplicate column names: 'x'"):
        read_dataset(p)


def test_corrupt_parquet(tmp_path):
    p = tmp_path / "c.parquet"
    p.write_bytes(b"PAR1" + b"\x00garbage" * 10)
    with pytest.raises(InputError, match="not a readable Parquet file"):
        read_dataset(p)


def test_missing_and_directory(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_dataset(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="is a directory"):
        read_dataset(tmp_path)


def test_dtype_overrides(tmp_path):
    p = _write(tmp_path / "d.csv", ",")
    ds = read_dataset(p, dtypes={"a": "categorical", "label": "numeric"})
    assert isinstance(ds.frame["a"].dtype, pd.CategoricalDtype)
    with pytest.raises(InputError, match="non-numeric values such as 'x'"):
        apply_dtypes(ds.frame, {"b": "numeric"}, source="d.csv")
    with pytest.raises(InputError, match="not in the data"):
        apply_dtypes(ds.frame, {"zzz": "numeric"}, source="d.csv")
    with pytest.raises(InputError, match="not dates"):
        apply_dtypes(pd.DataFrame({"d": ["2020-01-01", "yesterday"]}), {"d": "date"}, source="d.csv")
    out = apply_dtypes(pd.DataFrame({"d": ["2020-01-01", None]}), {"d": "date"}, source="d.csv")
    assert out["d"].iloc[0] == pd.Timestamp("2020-01-01") and pd.isna(out["d"].iloc[1])
    assert np.issubdtype(out["d"].dtype, np.datetime64)
