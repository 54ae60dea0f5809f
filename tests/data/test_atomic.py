import os
import stat

import pytest

from fraudkit.data.atomic import MARKER, ParquetStream, atomic_directory, check_name, check_output, write_text
from fraudkit.errors import OutputError


def _write(folder, kind="run", **kw):
    with atomic_directory(folder, kind=kind, **kw) as tmp:
        (tmp / "result.txt").write_text("new")


def test_a_folder_the_kit_did_not_write_is_refused_and_kept(tmp_path):
    out = tmp_path / "F"
    out.mkdir()
    (out / "thesis.txt").write_text("years of work")
    with pytest.raises(OutputError, match=r"did not write \(e.g. thesis.txt\).*--force"):
        _write(out)
    assert (out / "thesis.txt").read_text() == "years of work"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    _write(out, force=True)  # the user means it
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "result.txt"]


def test_an_earlier_output_of_the_same_kind_is_replaced_another_kind_is_not(tmp_path):
    out = tmp_path / "run"
    _write(out)
    _write(out)
    assert (out / "result.txt").read_text() == "new"
    with pytest.raises(OutputError, match="holds a fraudkit run, not a dataset"):
        _write(out, kind="dataset")
    empty = tmp_path / "empty"
    empty.mkdir()
    _write(empty, kind="dataset")


@pytest.mark.parametrize("where", ["same", "inside", "contains"])
def test_an_output_may_never_be_an_input(tmp_path, where):
    data = tmp_path / "data"
    data.mkdir()
    (data / "accounts.csv").write_text("account_id\n1\n")
    out = {"same": data, "inside": data / "run", "contains": tmp_path}[where]
    with pytest.raises(OutputError, match="an output may never be an input"):
        _write(out, inputs=[data], force=True)
    assert (data / "accounts.csv").read_text() == "account_id\n1\n"


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    out = tmp_path / "run"
    with atomic_directory(out, kind="run") as tmp:
        (tmp / "x").write_text("first")
        with pytest.raises(OutputError, match="another fraudkit process is writing"):
            _write(out)
    assert (out / "x").read_text() == "first"


def test_leftovers_of_killed_runs_are_removed_by_the_next_run(tmp_path):
    out = tmp_path / "run"
    for name in (".run.abc123.tmp", ".run.old-4242"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "raw_phones.parquet").write_text("13812345678")
    (tmp_path / ".runner.x.tmp").mkdir()  # another output's temporary folder is not ours
    _write(out)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert ".run.abc123.tmp" not in left and ".run.old-4242" not in left and ".runner.x.tmp" in left


def test_published_files_share_one_mode(tmp_path):
    p = write_text(tmp_path / "latest.html", "<html></html>")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o644


@pytest.mark.parametrize("name", [".", "..", "../escape", "a/b", "<b>x</b>", "", "x" * 200, "-flag"])
def test_unsafe_names_are_refused(name):
    with pytest.raises(OutputError, match="not a safe folder name"):
        check_name(name, what="run id")


def test_a_file_is_not_an_output_folder(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        check_output(f, kind="run")


def test_a_parquet_stream_writes_the_tables_in_order_as_one_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.string()), ("x", pa.int64())])
    tables = [pa.table({"id": pa.array([f"e{a}", f"e{a}b"]).dictionary_encode(), "x": [a, a * 7]})
              for a in range(25)]
    with ParquetStream(tmp_path / "s.parquet", schema, prepare=lambda t: t.cast(schema)) as out:
        for t in tables:
            out.write_table(t)
    pq.write_table(pa.concat_tables([t.cast(schema) for t in tables]), tmp_path / "whole.parquet")
    got = pq.read_table(tmp_path / "s.parquet")
    assert got.schema == schema
    assert got.equals(pq.read_table(tmp_path / "whole.parquet"))


def test_a_parquet_stream_raises_a_failed_write_and_closes_its_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("x", pa.int64())])

    def prepare(t):
        if t["x"][0].as_py() == 2:
            raise ValueError("chunk 2 cannot be written")
        return t

    out = ParquetStream(tmp_path / "s.parquet", schema, prepare=prepare)
    out.write_table(pa.table({"x": [1]}))
    out.write_table(pa.table({"x": [2]}))
    with pytest.raises(ValueError, match="chunk 2"):
        out.write_table(pa.table({"x": [3]}))  # raised by the next write, not lost
    out.close()
    assert pq.read_table(tmp_path / "s.parquet")["x"].to_pylist() == [1]
    with pytest.raises(ValueError, match="chunk 2"):  # the last write's failure is raised by close
        with ParquetStream(tmp_path / "t.parquet", schema, prepare=prepare) as last:
            last.write_table(pa.table({"x": [2]}))
    assert pq.read_table(tmp_path / "t.parquet").num_rows == 0
