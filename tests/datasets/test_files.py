"""Reading dataset files: schema, missing counts and rows, and hostile files refused
with a clear message before they are parsed whole."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pandas as pd
import pytest

from modelport.datasets.files import (
    MAX_COLUMNS,
    detect_format,
    preview_rows,
    profile_file,
    read_frame,
)
from modelport.errors import InvalidInputError
from tests.pipelines.training_data import customers_csv, customers_frame


def test_csv_schema_types_missing_and_rows(tmp_path: Path) -> None:
    path = customers_csv(tmp_path / "customers.csv")
    profile = profile_file(path, detect_format(path, "customers.csv", None))
    assert profile.format == "csv" and profile.rows == 240
    columns = {c.name: (c.type.value, c.missing) for c in profile.columns}
    assert columns == {
        "age": ("float", 15),
        "monthly": ("float", 0),
        "city": ("string", 12),
        "plan": ("string", 0),
        "churn": ("string", 0),
    }


def test_chunks_that_disagree_on_a_type_make_it_float_or_string(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    lines = ["n,x"] + [f"{i},{i}" for i in range(60_000)] + ["1.5,text"]
    path.write_text("\n".join(lines) + "\n")
    profile = profile_file(path, "csv")
    assert [(c.name, c.type.value) for c in profile.columns] == [("n", "float"), ("x", "string")]
    assert profile.rows == 60_001


def test_parquet_profile_counts_nulls_and_nans(tmp_path: Path) -> None:
    path = tmp_path / "customers.parquet"
    customers_frame().to_parquet(path)
    assert detect_format(path, "x.bin", None) == "parquet"
    profile = profile_file(path, "parquet")
    columns = {c.name: (c.type.value, c.missing) for c in profile.columns}
    assert columns["age"] == ("float", 15) and columns["city"] == ("string", 12)
    assert profile.rows == 240
    frame = read_frame(path, "parquet")
    assert list(frame.columns) == ["age", "monthly", "city", "plan", "churn"]
    names, rows = preview_rows(path, "parquet", 3)
    assert names == list(frame.columns) and len(rows) == 3


def test_preview_turns_missing_values_into_null(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text("a,b\n1,\n,x\n2.5,y\n")
    names, rows = preview_rows(path, "csv", 10)
    assert names == ["a", "b"]
    assert rows == [[1.0, None], [None, "x"], [2.5, "y"]]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\n\n", "no header row"),
        (b"a,b\n", "no data rows"),
        (b"a,a\n1,2\n", "appears twice"),
        (b"a,,c\n1,2,3\n", "column 2 has no name"),
        (b"name\n\xff\xfe caf\xe9\n", "not UTF-8"),
        (b"caf\xe9,b\n1,2\n", "not UTF-8"),
        (b'a,b\n1,"unterminated\n', "could not be parsed"),
    ],
)
def test_hostile_csv_is_refused_with_a_reason(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match=message):
        profile_file(path, detect_format(path, "bad.csv", None))


def test_a_million_column_header_is_refused_without_parsing_it(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    header = ",".join(f"c{i}" for i in range(1_000_000))
    path.write_text(header + "\n" + ",".join("1" for _ in range(1_000_000)) + "\n")
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(InvalidInputError, match="header row is longer"):
        profile_file(path, "csv")
    assert time.perf_counter() - started < 1.0
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grown_kib < 64 * 1024


def test_too_many_columns_within_the_byte_limit_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(MAX_COLUMNS + 1)) + "\n")
    with pytest.raises(InvalidInputError, match=f"at most {MAX_COLUMNS}"):
        profile_file(path, "csv")


def test_a_fake_parquet_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InvalidInputError, match="not a Parquet file"):
        detect_format(path, "data.parquet", None)
    with pytest.raises(InvalidInputError, match="not a Parquet file"):
        detect_format(path, "data.bin", "parquet")
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(b"PAR1" + b"\x00" * 64 + b"PAR1")
    with pytest.raises(InvalidInputError, match="Parquet file could not be read"):
        profile_file(damaged, detect_format(damaged, "damaged.parquet", None))


def test_an_unknown_declared_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a\n1\n")
    with pytest.raises(InvalidInputError, match="unknown dataset format"):
        detect_format(path, "data.csv", "xlsx")


def test_read_frame_round_trips(tmp_path: Path) -> None:
    path = customers_csv(tmp_path / "c.csv")
    pd.testing.assert_frame_equal(read_frame(path, "csv"), pd.read_csv(path), check_dtype=False)


def test_a_header_name_with_a_line_break_is_refused_before_pandas_reads_it(
    tmp_path: Path,
) -> None:
    # A quoted line break makes pandas read the header across lines: it would find more
    # columns than the first line names (an IndexError, a 500, before the fix), and a
    # million names after the break would escape the header's byte and column limits.
    wide = '"a\nb",' + ",".join(f"c{i}" for i in range(MAX_COLUMNS * 2)) + "\n1\n"
    for content in ('a,"b\nc",d\n1,2,3\n', wide):
        path = tmp_path / "multiline.csv"
        path.write_text(content)
        started = time.perf_counter()
        with pytest.raises(InvalidInputError, match="line break"):
            profile_file(path, "csv")
        assert time.perf_counter() - started < 1.0


def test_a_csv_with_carriage_return_line_ends_is_read(tmp_path: Path) -> None:
    path = tmp_path / "mac.csv"
    path.write_bytes(b"a,b\r1,2\r3,4\r")
    profile = profile_file(path, "csv")
    assert [c.name for c in profile.columns] == ["a", "b"] and profile.rows == 2


def test_preview_of_nested_parquet_columns(tmp_path: Path) -> None:
    # A list column reaches json_value as a numpy array, whose .item() raised (a 500 on
    # the preview endpoint) before the fix.
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "nested.parquet"
    table = pa.table(
        {
            "l": [[1, 2], [3]],
            "s": [{"a": 1.5}, {"a": None}],
            "t": pa.array([0, None], pa.timestamp("s")),
            "y": [1.0, 2.0],
        }
    )
    pq.write_table(table, path)
    names, rows = preview_rows(path, profile_file(path, "parquet").format, 5)
    assert names == ["l", "s", "t", "y"]
    assert rows == [
        [[1, 2], {"a": 1.5}, "1970-01-01T00:00:00", 1.0],
        [[3], {"a": None}, None, 2.0],  # a missing timestamp is null, not "NaT"
    ]
