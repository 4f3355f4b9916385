"""Reading dataset files (CSV, Parquet) with bounded memory: the schema (names, types,
missing counts) and row count are computed chunk by chunk, the header is checked before
anything else is parsed, and every failure is a clear ``InvalidInputError``.

pandas and pyarrow are imported inside the functions: the server imports this module at
start, and Parquet support is an optional extra."""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from modelport.errors import InvalidInputError
from modelport.training_types import ColumnProfile, ColumnType

MAX_COLUMNS = 4096
"""More columns than this are refused before the file is parsed."""
MAX_HEADER_BYTES = 1024 * 1024
MAX_COLUMN_NAME = 256
CHUNK_ROWS = 50_000
PARQUET_MAGIC = b"PAR1"


class DatasetFormat:
    CSV = "csv"
    PARQUET = "parquet"


@dataclass(frozen=True)
class DatasetProfile:
    """What a dataset file holds."""

    format: str
    rows: int
    columns: list[ColumnProfile]


def detect_format(path: Path, filename: str | None, declared: str | None) -> str:
    """``parquet`` when the file says so (its magic bytes), ``csv`` otherwise; a file
    declared or named Parquet that lacks the magic bytes is refused."""
    with path.open("rb") as stream:
        head = stream.read(4)
    if not head:
        raise InvalidInputError("the dataset file is empty; upload a CSV with a header row")
    wants_parquet = declared == DatasetFormat.PARQUET or (
        declared is None and (filename or "").lower().endswith((".parquet", ".pq"))
    )
    if head == PARQUET_MAGIC:
        return DatasetFormat.PARQUET
    if wants_parquet:
        raise InvalidInputError(
            "the file is not a Parquet file (it does not start with the 'PAR1' magic bytes); "
            "upload a real Parquet file, or a CSV named .csv"
        )
    if declared not in (None, DatasetFormat.CSV):
        raise InvalidInputError(f"unknown dataset format {declared[:32]!r}: use csv or parquet")
    return DatasetFormat.CSV


def profile_file(path: Path, fmt: str) -> DatasetProfile:
    """Schema, missing counts and row count of a dataset file; refuses what training could
    not use (no header, duplicate or empty column names, no rows, non-UTF-8 text)."""
    if fmt == DatasetFormat.PARQUET:
        return _profile_parquet(path)
    return _profile_csv(path)


def _check_names(names: list[str]) -> None:
    if len(names) > MAX_COLUMNS:
        raise InvalidInputError(
            f"the dataset has {len(names)} columns; at most {MAX_COLUMNS} are accepted"
        )
    seen: set[str] = set()
    for index, name in enumerate(names, start=1):
        if not name.strip():
            raise InvalidInputError(f"column {index} has no name; every column needs a header")
        if "\x00" in name or len(name) > MAX_COLUMN_NAME:
            raise InvalidInputError(
                f"column {index}'s name is not valid: at most {MAX_COLUMN_NAME} characters, "
                "no NUL characters"
            )
        if name in seen:
            raise InvalidInputError(
                f"column name {name[:64]!r} appears twice; names must be unique"
            )
        seen.add(name)


def read_csv_header(path: Path) -> list[str]:
    """The header row's names, read with a byte limit (a header of a million columns is
    refused after ``MAX_HEADER_BYTES``, never parsed whole)."""
    with path.open("rb") as stream:
        head = stream.read(MAX_HEADER_BYTES + 1)
    # The first line ends at \n, \r\n or a bare \r, as for pandas' parser.
    line = re.split(rb"\r|\n", head, maxsplit=1)[0]
    if len(line) > MAX_HEADER_BYTES:
        raise InvalidInputError(
            f"the CSV header row is longer than {MAX_HEADER_BYTES} bytes; at most "
            f"{MAX_COLUMNS} columns are accepted"
        )
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInputError(
            "the CSV header is not UTF-8 text; save the file as UTF-8"
        ) from None
    if not text.strip():
        raise InvalidInputError("the CSV has no header row; the first line must name the columns")
    names = next(csv.reader([text + "\n"]), [])
    if any("\n" in name or "\r" in name for name in names):
        # pandas would read such a header on across lines, past the limits checked here.
        raise InvalidInputError(
            "a CSV column name holds a line break (a quoted name spans lines); put every "
            "column name on the header line"
        )
    _check_names(names)
    return names


def _column_type(dtype: Any) -> ColumnType:
    from pandas.api import types

    if types.is_bool_dtype(dtype):
        return ColumnType.BOOLEAN
    if types.is_integer_dtype(dtype):
        return ColumnType.INTEGER
    if types.is_float_dtype(dtype):
        return ColumnType.FLOAT
    if types.is_datetime64_any_dtype(dtype):
        return ColumnType.DATETIME
    return ColumnType.STRING


def _merged(first: ColumnType | None, second: ColumnType) -> ColumnType:
    """The type of a column whose chunks were read as ``first`` and ``second``."""
    if first is None or first is second:
        return second
    if {first, second} <= {ColumnType.INTEGER, ColumnType.FLOAT}:
        return ColumnType.FLOAT
    return ColumnType.STRING


def csv_chunks(path: Path, chunk_rows: int = CHUNK_ROWS, **options: Any) -> Any:
    """pandas' chunked CSV reader with the decoding rules every reader here shares."""
    import pandas as pd

    return pd.read_csv(
        path,
        chunksize=chunk_rows,
        encoding="utf-8-sig",
        encoding_errors="strict",
        low_memory=True,
        **options,
    )


def csv_errors() -> tuple[type[Exception], ...]:
    import pandas as pd

    return (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OverflowError)


def _profile_csv(path: Path) -> DatasetProfile:
    names = read_csv_header(path)
    types: list[ColumnType | None] = [None] * len(names)
    missing = [0] * len(names)
    rows = 0
    try:
        with csv_chunks(path) as reader:
            for chunk in reader:
                rows += len(chunk)
                if len(chunk.columns) != len(names):
                    raise InvalidInputError(
                        f"the CSV parser found {len(chunk.columns)} columns where the header "
                        f"names {len(names)}; check the header's quoting"
                    )
                for index, name in enumerate(chunk.columns):
                    types[index] = _merged(types[index], _column_type(chunk[name].dtype))
                    missing[index] += int(chunk[name].isna().sum())
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"the CSV is not UTF-8 text (invalid byte at offset {exc.start} of a block); "
            "save it as UTF-8"
        ) from None
    except csv_errors() as exc:
        raise InvalidInputError(f"the CSV could not be parsed: {_first_line(exc)}") from None
    if rows == 0:
        raise InvalidInputError("the CSV has a header but no data rows")
    columns = [
        ColumnProfile(name=name, type=kind or ColumnType.STRING, missing=count)
        for name, kind, count in zip(names, types, missing, strict=True)
    ]
    return DatasetProfile(DatasetFormat.CSV, rows, columns)


def _parquet_file(path: Path) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidInputError(
            "this server cannot read Parquet: install pyarrow on it "
            "(pip install 'modelport[parquet]'), or upload a CSV"
        ) from None
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for damaged files
        raise InvalidInputError(f"the Parquet file could not be read: {_first_line(exc)}") from None


def _arrow_type(arrow_type: Any) -> ColumnType:
    import pyarrow as pa

    if pa.types.is_boolean(arrow_type):
        return ColumnType.BOOLEAN
    if pa.types.is_integer(arrow_type):
        return ColumnType.INTEGER
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return ColumnType.FLOAT
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return ColumnType.DATETIME
    return ColumnType.STRING


def _profile_parquet(path: Path) -> DatasetProfile:
    import pyarrow.compute as pc

    parquet = _parquet_file(path)
    schema = parquet.schema_arrow
    names = [str(name) for name in schema.names]
    _check_names(names)
    types = [_arrow_type(field.type) for field in schema]
    missing = [0] * len(names)
    try:
        for batch in parquet.iter_batches(batch_size=CHUNK_ROWS):
            for index, column in enumerate(batch.columns):
                missing[index] += column.null_count
                if types[index] is ColumnType.FLOAT and column.type.bit_width in (16, 32, 64):
                    missing[index] += int(pc.sum(pc.is_nan(column)).as_py() or 0)
    except Exception as exc:
        raise InvalidInputError(f"the Parquet file could not be read: {_first_line(exc)}") from None
    rows = int(parquet.metadata.num_rows)
    if rows == 0:
        raise InvalidInputError("the Parquet file has no rows")
    columns = [
        ColumnProfile(name=name, type=kind, missing=count)
        for name, kind, count in zip(names, types, missing, strict=True)
    ]
    return DatasetProfile(DatasetFormat.PARQUET, rows, columns)


def read_frame(path: Path, fmt: str) -> Any:
    """The whole dataset as a pandas DataFrame (for training)."""
    import pandas as pd

    if fmt == DatasetFormat.PARQUET:
        return _parquet_file(path).read().to_pandas()
    read_csv_header(path)
    try:
        with csv_chunks(path) as reader:
            return pd.concat(list(reader), ignore_index=True)
    except UnicodeDecodeError:
        raise InvalidInputError("the CSV is not UTF-8 text; save it as UTF-8") from None
    except csv_errors() as exc:
        raise InvalidInputError(f"the CSV could not be parsed: {_first_line(exc)}") from None


def preview_rows(path: Path, fmt: str, limit: int) -> tuple[list[str], list[list[Any]]]:
    """The column names and the first ``limit`` rows, as JSON-ready values."""
    if fmt == DatasetFormat.PARQUET:
        parquet = _parquet_file(path)
        batch = next(parquet.iter_batches(batch_size=limit), None)
        frame = batch.to_pandas() if batch is not None else parquet.schema_arrow.empty_table()
        frame = frame.to_pandas() if hasattr(frame, "to_pandas") else frame
    else:
        read_csv_header(path)
        try:
            with csv_chunks(path, chunk_rows=limit) as reader:
                frame = next(iter(reader))
        except UnicodeDecodeError:
            raise InvalidInputError("the CSV is not UTF-8 text; save it as UTF-8") from None
        except csv_errors() as exc:
            raise InvalidInputError(f"the CSV could not be parsed: {_first_line(exc)}") from None
    columns = [str(name) for name in frame.columns]
    rows = [[json_value(value) for value in row] for row in frame.itertuples(index=False)]
    return columns, rows[:limit]


def json_value(value: Any) -> Any:
    """A cell as JSON: NaN and missing values become None, numpy scalars plain numbers."""
    if value is None:
        return None
    if isinstance(value, datetime | date):
        return None if value != value else value.isoformat()  # pandas' NaT is a datetime
    if getattr(value, "ndim", 0) > 0:  # a list cell of a Parquet file: a numpy array
        value = value.tolist()
    if isinstance(value, list | tuple):
        return [json_value(part) for part in value]
    if isinstance(value, dict):  # a struct cell
        return {str(key): json_value(part) for key, part in value.items()}
    item = getattr(value, "item", None)
    if callable(item):
        value = item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    text = str(value)
    return None if text in ("nan", "NaT", "<NA>", "None") else text


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
