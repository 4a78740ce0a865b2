"""Rate traces and recorded sessions: formats, windows, and file:line errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from autoscaler.cli import main
from autoscaler.sim.arrivals import read_session_csv
from autoscaler.sim.trace import TraceError, parse_rates, parse_time, read_rates
from tests.realparts import missing_real_part

NASA = Path(__file__).resolve().parents[2] / "shared" / "traces" / "nasa-http-1995-per-minute.csv"


def write(tmp_path: Path, text: str, name: str = "trace.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_every_timestamp_format_with_and_without_header() -> None:
    rows = [
        "minute,requests",
        "1995-07-01T00:00:00-04:00,42",
        "1995-07-01T04:01:00Z,7",
        "1995-07-01 04:02:00,3.5",
        "1995-07-01T04:03:00,0",
    ]
    points = parse_rates(rows, "t.csv")
    assert [p.count for p in points] == [42, 7, 3.5, 0]
    assert points[0].at == datetime(1995, 7, 1, 0, 0, tzinfo=timezone(timedelta(hours=-4)))
    # no offset: UTC, so all four are one minute apart
    assert [(p.at - points[0].at).total_seconds() for p in points] == [0, 60, 120, 180]
    assert parse_rates(rows[1:], "t.csv") == points


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1995-07-01 00:02:00", "expected two columns"),
        ("yesterday,5", "bad timestamp 'yesterday'"),
        ("1995-07-01 00:02:00,many", "count 'many' is not a number"),
        ("1995-07-01 00:02:00,-1", "finite number >= 0"),
        ("1995-07-01 00:02:00,nan", "finite number >= 0"),
        ("1995-07-01 00:00:30,5", "is not after the row before"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, f"time,count\n1995-07-01 00:00:00,1\n1995-07-01 00:01:00,2\n{line}\n")
    with pytest.raises(TraceError) as err:
        read_rates(path)
    assert str(err.value).startswith(f"{path}:4: ")
    assert message in str(err.value)


@pytest.mark.parametrize("count", ["", "n/a", "-"])
def test_a_first_row_with_a_time_is_data_not_a_header(count: str) -> None:
    """Only a row without a time is a header: a first row whose count is bad is refused
    with its line, as on any other line, not dropped."""
    rows = [f"1995-07-01 00:00:00,{count}", "1995-07-01 00:01:00,2"]
    with pytest.raises(TraceError, match=f"^t.csv:1: count '{count}' is not a number"):
        parse_rates(rows, "t.csv")


def test_empty_file_and_empty_window(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"empty\.csv:1: no data rows"):
        read_rates(write(tmp_path, "time,count\n", "empty.csv"))
    path = write(tmp_path, "1995-07-01 00:00:00,1\n")
    with pytest.raises(TraceError, match="no rows between"):
        read_rates(path, start=parse_time("1996-01-01 00:00:00"))


def test_window_from_is_inclusive_to_is_exclusive(tmp_path: Path) -> None:
    rows = "".join(f"1995-07-01 00:{m:02d}:00,{m}\n" for m in range(10))
    path = write(tmp_path, rows)
    got = read_rates(path, parse_time("1995-07-01 00:03:00"), parse_time("1995-07-01 00:06:00"))
    assert [p.count for p in got] == [3, 4, 5]


def test_the_nasa_trace_reads_whole() -> None:
    if not NASA.exists():
        missing_real_part(f"{NASA} not present")
    points = read_rates(NASA)
    assert len(points) == 84_334
    assert sum(p.count for p in points) == 3_461_610
    assert points[0].at == datetime(1995, 7, 1, 4, 0, tzinfo=UTC)


def test_session_csv_header_optional_and_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "start,end\n2024-05-06 08:00:00,2024-05-06 08:30:00\n", "s.csv")
    assert read_session_csv(path) == [
        (datetime(2024, 5, 6, 8, tzinfo=UTC), datetime(2024, 5, 6, 8, 30, tzinfo=UTC))
    ]
    bad = write(
        tmp_path, "2024-05-06 08:00:00,2024-05-06 08:30:00\n2024-05-06 09:00:00,x\n", "b.csv"
    )
    with pytest.raises(TraceError, match=rf"^{bad}:2: bad timestamp 'x'"):
        read_session_csv(bad)
    backwards = write(tmp_path, "2024-05-06 08:00:00,2024-05-06 07:00:00\n", "r.csv")
    with pytest.raises(TraceError, match=rf"^{backwards}:1: session ends before it starts"):
        read_session_csv(backwards)


@pytest.mark.parametrize(
    "first",
    ["2024-05-06 08:00:00,2024-05-06 8h30", "2024-05-06 8h00,2024-05-06 08:30:00"],
)
def test_a_first_session_with_one_bad_time_is_refused_not_dropped(
    tmp_path: Path, first: str
) -> None:
    """A first row with one good time is a session, not a header: its typo is refused with
    its line, as on any other line, instead of losing the session without a word."""
    path = write(tmp_path, f"{first}\n2024-05-06 09:00:00,2024-05-06 09:30:00\n", "s.csv")
    with pytest.raises(TraceError, match=rf"^{path}:1: bad timestamp '2024-05-06 8h"):
        read_session_csv(path)


def test_a_byte_order_mark_is_not_part_of_the_first_row(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts the file with a BOM: without a header row, the first
    row is data all the same (a recorded session was dropped as a header)."""
    bom = "\ufeff"
    trace = write(tmp_path, f"{bom}1995-07-01 00:00:00,1\n1995-07-01 00:01:00,2\n")
    assert [p.count for p in read_rates(trace)] == [1, 2]
    sessions = write(
        tmp_path,
        f"{bom}2024-05-06 08:00:00,2024-05-06 08:30:00\n2024-05-06 08:10:00,2024-05-06 08:20:00\n",
        "s.csv",
    )
    assert [s.minute for s, _ in read_session_csv(sessions)] == [0, 10]
    headed = write(tmp_path, f"{bom}start,end\n2024-05-06 08:00:00,2024-05-06 08:30:00\n", "h.csv")
    assert len(read_session_csv(headed)) == 1


def test_cli_reports_a_malformed_trace_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "time,count\n1995-07-01 00:00:00,1\n1995-07-01 00:01:00,lots\n")
    code = main(["simulate", "--trace", str(path), "--out", str(tmp_path / "out")])
    assert code == 1
    assert f"{path}:3: count 'lots' is not a number" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_utf8_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # past the decoder's first chunk, with CRLF line ends: lines are still counted right
    rows = b"".join(b"1995-07-01 %02d:%02d:00,1\r\n" % divmod(m, 60) for m in range(1000))
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"time,count\r\n" + rows + b"1995-07-02 00:00:00,1 caf\xe9\r\n")
    with pytest.raises(TraceError, match=rf"^{path}:1002: not UTF-8 text \(byte 0xe9\)$"):
        read_rates(path)
    code = main(["simulate", "--trace", str(path), "--out", str(tmp_path / "out")])
    assert code == 1
    assert f"{path}:1002: not UTF-8 text" in capsys.readouterr().err
    sessions = tmp_path / "sessions.csv"
    sessions.write_bytes(b"start,end\n2024-05-06 08:00:00,2024-05-06 08:30:00\n\xff\n")
    code = main(["simulate", "--sessions", str(sessions), "--out", str(tmp_path / "out")])
    assert code == 1
    assert f"{sessions}:3: not UTF-8 text (byte 0xff)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
