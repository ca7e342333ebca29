"""Dataset loading: CSV (delimiter sniffed, UTF-8 with or without BOM) and Parquet, hashed.

Every failure is an :class:`~service.errors.InputError` naming the file and what was expected.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from service.errors import InputError

_SNIFF_BYTES = 64 * 1024
_PARQUET_MAGIC = b"PAR1"
_DELIMITERS = ",;\t|"


@dataclass(frozen=True)
class LoadedDataset:
    path: Path
    frame: pd.DataFrame
    sha256: str
    format: str
    delimiter: str | None = None

    @property
    def rows(self) -> int:
        return int(self.frame.shape[0])

    @property
    def columns(self) -> int:
        return int(self.frame.shape[1])


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _sniff_delimiter(sample: str, path: Path) -> str:
    lines = [ln for ln in sample.splitlines() if ln.strip()][:50]
    if len(lines) > 1 and not sample.endswith("\n"):
        lines = lines[:-1]  # the last line may be cut mid-way
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=_DELIMITERS).delimiter
    except csv.Error:
        # Sniffer gives up on single-column or very regular files: choose the delimiter that splits the
        # header into the most fields consistently across lines.
        best, best_n = ",", 1
        for d in _DELIMITERS:
            counts = {ln.count(d) for ln in lines}
            if len(counts) == 1 and (n := counts.pop() + 1) > best_n:
                best, best_n = d, n
        return best


def _header_fields(sample: str, delimiter: str) -> list[str]:
    first = sample.splitlines()[0] if sample else ""
    return next(csv.reader([first], delimiter=delimiter), [])


def read_dataset(
    path: str | Path,
    *,
    dtypes: Mapping[str, str] | None = None,
    label: str = "dataset",
) -> LoadedDataset:
    """Read a CSV or Parquet file into a DataFrame, with its sha256.

    Parameters
    ----------
    path : file to read; the format is detected from the content (Parquet magic bytes), not the name.
    dtypes : optional overrides ``{column: numeric|categorical|date|string}``.
    label : the spec key that named this file, used in error messages.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(
            "file not found", file=str(p), field=label, expected="an existing CSV or Parquet file"
        )
    if p.is_dir():
        raise InputError("is a directory", file=str(p), field=label, expected="a CSV or Parquet file")
    if p.stat().st_size == 0:
        raise InputError("the file is empty", file=str(p), field=label, expected="a header row and data rows")
    with p.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    # hash while parsing: both release the GIL, and hashing a large file is a good part of loading it
    with ThreadPoolExecutor(max_workers=1) as pool:
        hashing = pool.submit(sha256_file, p)
        if head[:4] == _PARQUET_MAGIC:
            frame = _read_parquet(p, label)
            fmt, delim = "parquet", None
        else:
            frame, delim = _read_csv(p, head, label)
            fmt = "csv"
        digest = hashing.result()
    if frame.shape[1] == 0:
        raise InputError(
            "no columns found", file=str(p), field=label, expected="a header row naming the columns"
        )
    if frame.shape[0] == 0:
        raise InputError(
            "the file has a header but no data rows",
            file=str(p),
            field=label,
            expected="at least one data row",
        )
    if dtypes:
        frame = apply_dtypes(frame, dtypes, source=str(p))
    return LoadedDataset(path=p, frame=frame, sha256=digest, format=fmt, delimiter=delim)


def _read_parquet(p: Path, label: str) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        _check_duplicates(list(pq.read_schema(p).names), p, label)
        table = pq.read_table(p)
    except InputError:
        raise
    except Exception as exc:  # pyarrow raises several types for corrupt files
        msg = str(exc).splitlines()[0]
        raise InputError(f"not a readable Parquet file ({msg})", file=str(p), field=label) from None
    return table.to_pandas()


def _read_csv(p: Path, head: bytes, label: str) -> tuple[pd.DataFrame, str]:
    if b"\x00" in head:
        raise InputError(
            "the file contains NUL bytes and is not a text CSV",
            file=str(p),
            field=label,
            expected="a UTF-8 CSV or a Parquet file",
        )
    try:
        sample = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # A cut multi-byte character at the sniff boundary is fine; anything earlier is not UTF-8.
        if exc.start < len(head) - 4:
            raise InputError(
                f"not UTF-8 text (invalid byte at offset {exc.start})",
                file=str(p),
                field=label,
                expected="a UTF-8 encoded CSV (with or without BOM) or a Parquet file",
            ) from None
        sample = head[: exc.start].decode("utf-8-sig")
    if not sample.strip():
        raise InputError("the file is empty", file=str(p), field=label, expected="a header row and data rows")
    delim = _sniff_delimiter(sample, p)
    header = _header_fields(sample, delim)
    _check_duplicates(header, p, label)
    try:
        frame = pd.read_csv(
            p, sep=delim, encoding="utf-8-sig", engine="pyarrow" if len(delim) == 1 else "python"
        )
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not UTF-8 text ({exc.reason})", file=str(p), field=label, expected="a UTF-8 encoded CSV"
        ) from None
    except Exception as exc:  # pyarrow.lib.ArrowInvalid etc.: ragged rows, bad quoting
        msg = str(exc).splitlines()[0]
        raise InputError(
            f"cannot parse as CSV with delimiter {delim!r}: {msg}",
            file=str(p),
            field=label,
            expected="a rectangular CSV with one header row",
        ) from None
    return frame, delim


def _check_duplicates(names: list[str], p: Path, label: str) -> None:
    seen: set[str] = set()
    dups = sorted({n for n in names if n in seen or seen.add(n)})  # type: ignore[func-returns-value]
    if dups:
        raise InputError(
            f"duplicate column names: {', '.join(repr(d) for d in dups)}",
            file=str(p),
            field=label,
            expected="every column name to be unique",
        )


def apply_dtypes(frame: pd.DataFrame, dtypes: Mapping[str, str], *, source: str) -> pd.DataFrame:
    """Apply ``{column: numeric|categorical|date|string}`` overrides, failing loudly on bad values."""
    out = frame.copy()
    for col, kind in dtypes.items():
        if col not in out.columns:
            raise InputError(
                f"dtype override for column '{col}', which is not in the data",
                file=source,
                field=f"dtypes.{col}",
                expected=f"one of the columns: {', '.join(map(str, out.columns[:20]))}",
            )
        s = out[col]
        if kind == "numeric":
            conv = pd.to_numeric(s, errors="coerce")
            bad = conv.isna() & s.notna()
            if bad.any():
                raise InputError(
                    f"column '{col}' has non-numeric values such as {s[bad].iloc[0]!r}",
                    file=source,
                    field=f"dtypes.{col}",
                    expected="numbers only (or declare the column categorical)",
                )
            out[col] = conv.astype("float64")
        elif kind == "categorical":
            out[col] = s.astype("string").astype("category")
        elif kind == "string":
            out[col] = s.astype("string")
        elif kind == "date":
            out[col] = parse_dates(s, column=col, source=source)
    return out


def parse_dates(s: pd.Series, *, column: str, source: str) -> pd.Series:
    """Parse a date column; every non-missing value must parse."""
    if pd.api.types.is_datetime64_any_dtype(s):
        return s
    conv = (
        pd.to_datetime(s, errors="coerce", format="mixed")
        if s.dtype == object
        else pd.to_datetime(s, errors="coerce")
    )
    bad = conv.isna() & s.notna()
    if bad.any():
        raise InputError(
            f"column '{column}' has {int(bad.sum())} value(s) that are not dates, e.g. {s[bad].iloc[0]!r}",
            file=source,
            field="date_column",
            expected="ISO dates such as 2008-07-31",
        )
    return conv


def is_numeric(s: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(s)) and not pd.api.types.is_bool_dtype(s)


def column_kind(s: pd.Series) -> str:
    """numeric | categorical | date | boolean | text (high-cardinality strings)."""
    if pd.api.types.is_bool_dtype(s):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(s):
        return "date"
    if is_numeric(s):
        return "numeric"
    nunique = s.nunique(dropna=True)
    if nunique > max(50, 0.5 * len(s)):
        return "text"
    return "categorical"


def as_float(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


__all__ = [
    "LoadedDataset",
    "apply_dtypes",
    "as_float",
    "column_kind",
    "is_numeric",
    "parse_dates",
    "read_dataset",
    "sha256_file",
]
