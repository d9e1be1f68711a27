"""The runtime generated flows import: results store, db loader, file references, task shapes."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import prefect
import pytest
from prefect import Flow, Parameter
from prefect.engine.results import PrefectResult

import compiler.runtime.tasks as runtime_tasks
from compiler.runtime import (
    GENERIC_RESULT_TYPE,
    RESULT_FIELDS,
    FileReferenceError,
    ResultLookupError,
    SQLiteResultsStore,
    StoreUnavailableError,
    fetch_result_value,
    load_db_result,
    load_file,
    open_results_store,
    result_document,
    results_store,
    save_db_result,
    save_file,
    unique_result_hash,
)

REPO = Path(__file__).resolve().parents[1]

OUTPUTS = {
    "end_norm_emit_x": 4.5e-7,
    "screens": [{"sigma_x": 0.001}, {"sigma_x": 0.002}],
    "nested": {"a": 1, "b": 2},
}
INPUTS = {"quad_k": 0.5, "drift_length": 1.0}


def _saved_reference(project_name: str = "lume") -> dict:
    return save_db_result.run(INPUTS, OUTPUTS, project_name=project_name)


# --- the store -------------------------------------------------------------------------------


def test_sqlite_store_round_trips_a_document(runtime_env: Path) -> None:
    document = result_document(INPUTS, OUTPUTS, flow_id="impact")
    with open_results_store() as store:
        store.insert("lume", document)
        assert (
            store.find_one("lume", {"unique_hash": document["unique_hash"]}) == document
        )
        assert store.find_one("lume", {"outputs.nested.a": 1}) == document
        assert store.find_one("lume", {"outputs.nested.a": 2}) is None
        assert store.find_one("other", {"unique_hash": document["unique_hash"]}) is None
    assert isinstance(document["date_modified"], datetime)
    assert (runtime_env / "results.db").is_file()


def test_sqlite_store_replaces_a_document_with_the_same_hash(runtime_env: Path) -> None:
    first = result_document(INPUTS, OUTPUTS, flow_id="impact")
    later = {**first, "flow_id": "impact-rerun"}
    store = results_store()
    assert isinstance(store, SQLiteResultsStore)
    store.insert("lume", first)
    store.insert("lume", later)
    assert store.find_one("lume", {"unique_hash": first["unique_hash"]}) == later
    assert store.collections() == ["lume"]


def test_default_store_is_sqlite_under_the_working_directory(
    runtime_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOWC_RESULTS_DB")
    reference = _saved_reference()
    assert (runtime_env / ".flowc" / "results.db").is_file()
    assert load_db_result.run(reference, ["inputs", "quad_k"]) == 0.5


def test_store_url_is_read_at_call_time(
    runtime_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWC_RESULTS_DB", f"sqlite:///{runtime_env / 'a' / 'one.db'}")
    reference = _saved_reference()
    monkeypatch.setenv("FLOWC_RESULTS_DB", f"sqlite:///{runtime_env / 'b' / 'two.db'}")
    with pytest.raises(ResultLookupError, match="no result matches"):
        load_db_result.run(reference, ["outputs"])
    assert (runtime_env / "a" / "one.db").is_file()


def test_unknown_store_url_is_rejected_with_the_accepted_forms(
    runtime_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWC_RESULTS_DB", "postgres://localhost/results")
    with pytest.raises(ValueError, match=r"sqlite:///PATH or mongodb://"):
        results_store()


def test_concurrent_writers_from_threads_all_land(runtime_env: Path) -> None:
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(15):
                save_db_result.run(
                    {"worker": worker, "i": i}, {"value": worker * i}, "lume"
                )
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with open_results_store() as store:
        for worker in range(6):
            for i in range(15):
                query = {
                    "unique_hash": unique_result_hash(
                        {"worker": worker, "i": i}, {"value": worker * i}, "local"
                    )
                }
                assert store.find_one("lume", query) is not None


def test_runtime_imports_no_compiler_stage_and_no_driver_for_sqlite(
    runtime_env: Path,
) -> None:
    code = (
        "import sys, compiler.runtime as r\n"
        "ref = r.save_db_result.run({'a': 1}, {'b': 2}, 'lume')\n"
        "assert r.load_db_result.run(ref, ['outputs', 'b']) == 2\n"
        "mods = sorted(m for m in sys.modules if m.split('.')[0] in ('compiler', 'pymongo'))\n"
        "print('\\n'.join(mods))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        cwd=runtime_env,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ).stdout.split()
    assert "pymongo" not in output
    assert all(m == "compiler" or m.startswith("compiler.runtime") for m in output)


# --- save_db_result / load_db_result -------------------------------------------------------


def test_save_db_result_returns_a_lume_result_reference(runtime_env: Path) -> None:
    reference = _saved_reference()
    assert reference == {
        "project_name": "lume",
        "result_type_string": GENERIC_RESULT_TYPE,
        "query": {"unique_hash": unique_result_hash(INPUTS, OUTPUTS, "local")},
    }
    json.dumps(reference)  # a PrefectResult must be able to hold it
    with open_results_store() as store:
        document = store.find_one("lume", reference["query"])
    assert document is not None
    assert set(document) == set(RESULT_FIELDS)
    assert document["inputs"] == INPUTS and document["outputs"] == OUTPUTS
    assert document["flow_id"] == "local"


def test_unique_hash_is_lumes_md5_of_inputs_outputs_and_flow_id() -> None:
    # LUME's fingerprint_dict: md5 of json.dumps({inputs, outputs, flow_id}), default separators,
    # keys in the order given. Written out literally here, not through the runtime's helper.
    expected_text = (
        '{"inputs": {"quad_k": 0.5, "drift_length": 1.0}, "outputs": {"end_norm_emit_x": '
        '4.5e-07, "screens": [{"sigma_x": 0.001}, {"sigma_x": 0.002}], "nested": {"a": 1, '
        '"b": 2}}, "flow_id": "impact"}'
    )
    expected = hashlib.md5(expected_text.encode()).hexdigest()
    assert unique_result_hash(INPUTS, OUTPUTS, "impact") == expected
    document = result_document(INPUTS, OUTPUTS, "impact", date_modified=datetime(2020, 1, 1))
    assert document["unique_hash"] == expected
    assert document["result_type_string"] == "lume_services.results.generic.Result"
    # As in LUME: the flow and the order of the keys count; the time does not.
    assert unique_result_hash(INPUTS, OUTPUTS, "other") != expected
    reordered = dict(reversed(list(INPUTS.items())))
    assert unique_result_hash(reordered, OUTPUTS, "impact") != expected
    assert result_document(INPUTS, OUTPUTS, "impact")["unique_hash"] == expected
    assert unique_result_hash({"t": "ü"}, {}, "f") == hashlib.md5(
        b'{"inputs": {"t": "\\u00fc"}, "outputs": {}, "flow_id": "f"}'
    ).hexdigest()


def test_save_db_result_in_a_flow_uses_the_flow_project_and_name(
    runtime_env: Path,
) -> None:
    with Flow("impact") as flow:
        outputs = Parameter("outputs")
        saved = save_db_result(inputs={"k": 1}, outputs=outputs)
    assert flow.slugs[saved] == "save_db_result-1"
    with prefect.context(project_name="lume"):
        state = flow.run(parameters={"outputs": {"emit": 1.0}})
    assert state.is_successful()
    reference = state.result[saved].result
    assert reference["project_name"] == "lume"
    with open_results_store() as store:
        document = store.find_one("lume", reference["query"])
    assert document is not None and document["flow_id"] == "impact"


def test_save_db_result_without_a_project_uses_default(runtime_env: Path) -> None:
    reference = save_db_result.run({"a": 1}, {"b": 2})
    assert reference["project_name"] == "default"


def test_load_db_result_follows_the_attribute_index(runtime_env: Path) -> None:
    reference = _saved_reference()
    assert load_db_result.run(reference, ["outputs", "end_norm_emit_x"]) == 4.5e-7
    assert load_db_result.run(reference, ["outputs", "screens", 1, "sigma_x"]) == 0.002
    assert (
        load_db_result.run(reference, ["outputs", "screens", "-1", "sigma_x"]) == 0.002
    )
    assert load_db_result.run(reference, ["inputs"]) == INPUTS
    assert load_db_result.run(reference, ["flow_id"]) == "local"


@pytest.mark.parametrize(
    ("attribute_index", "message"),
    [
        (
            ["outputs", "end_norm_emit_y"],
            r"has no 'outputs' -> 'end_norm_emit_y' \(missing key 'end_norm_emit_y'; "
            r"available: end_norm_emit_x, nested, screens\)",
        ),
        (
            ["output"],
            r"has no 'output' \(missing key 'output'; available: date_modified, flow_id, "
            r"inputs, outputs, result_type_string, unique_hash\)",
        ),
        (
            ["outputs", "screens", 5],
            r"has no 'outputs' -> 'screens' -> 5 \(index 5 out of range for a list of length 2\)",
        ),
        (
            ["outputs", "screens", "first"],
            r"'outputs' -> 'screens' -> 'first' \(a list is indexed by integers, not 'first'\)",
        ),
        (
            ["outputs", "end_norm_emit_x", 0],
            r"\('outputs' -> 'end_norm_emit_x' is a float, which cannot be indexed\)",
        ),
    ],
)
def test_load_db_result_names_the_reference_and_path_of_a_missing_value(
    runtime_env: Path, attribute_index: list, message: str
) -> None:
    reference = _saved_reference()
    with pytest.raises(ResultLookupError, match=message) as raised:
        load_db_result.run(reference, attribute_index)
    assert str(raised.value).startswith(
        f"result {reference['query']!r} in collection 'lume' has no "
    )
    assert not isinstance(raised.value, KeyError)


def test_load_db_result_reports_a_missing_result(runtime_env: Path) -> None:
    reference = {**_saved_reference(), "query": {"unique_hash": "0" * 64}}
    with pytest.raises(ResultLookupError) as raised:
        load_db_result.run(reference, ["outputs", "end_norm_emit_x"])
    assert str(raised.value) == (
        f"no result matches {{'unique_hash': '{'0' * 64}'}} in collection 'lume'"
    )


def test_load_db_result_rejects_what_is_not_a_reference(runtime_env: Path) -> None:
    with pytest.raises(
        ResultLookupError, match=r"'not a ref' is not a result reference"
    ):
        load_db_result.run("not a ref", ["outputs"])
    with pytest.raises(ValueError, match="attribute_index must be a non-empty list"):
        load_db_result.run(_saved_reference(), [])


def _loader_flow(task: prefect.Task) -> tuple[Flow, prefect.Task]:
    with Flow("loader") as flow:
        reference = Parameter("reference")
        loaded = task(reference, ["outputs", "end_norm_emit_x"])
    return flow, loaded


def test_a_missing_value_fails_the_task_at_once_without_retries(
    runtime_env: Path,
) -> None:
    reference = {**_saved_reference(), "query": {"unique_hash": "missing"}}
    flow, loaded = _loader_flow(load_db_result)
    assert (
        load_db_result.max_retries >= 1
    )  # retries exist, but not for this kind of error
    started = datetime.now(timezone.utc)
    state = flow.run(parameters={"reference": reference})
    assert state.is_failed()
    task_state = state.result[loaded]
    assert task_state.is_failed()
    assert "no result matches {'unique_hash': 'missing'} in collection 'lume'" in (
        task_state.message
    )
    assert isinstance(task_state.result, ResultLookupError)
    assert datetime.now(timezone.utc) - started < load_db_result.retry_delay


def test_transient_store_errors_are_retried_by_prefect(
    runtime_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = _saved_reference()
    real_fetch = runtime_tasks.fetch_result_value
    attempts: list[int] = []

    def flaky_fetch(*args: object) -> object:
        attempts.append(1)
        if len(attempts) <= 2:
            raise StoreUnavailableError(
                "results database is unreachable: connection refused"
            )
        return real_fetch(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(runtime_tasks, "fetch_result_value", flaky_fetch)
    quick = load_db_result.copy(retry_delay=timedelta(milliseconds=50))
    flow, loaded = _loader_flow(quick)
    state = flow.run(parameters={"reference": reference})
    assert state.is_successful()
    assert state.result[loaded].result == 4.5e-7
    assert len(attempts) == 3


def test_an_unreachable_mongodb_is_a_retryable_store_error(runtime_env: Path) -> None:
    pytest.importorskip("pymongo")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the client connects
    url = f"mongodb://127.0.0.1:{port}/results?serverSelectionTimeoutMS=200"
    reference = {"project_name": "lume", "query": {"unique_hash": "x"}}
    with pytest.raises(StoreUnavailableError, match="unreachable"):
        fetch_result_value(reference, ["outputs"], url=url)


def test_reference_tasks_persist_their_results() -> None:
    for task in (save_db_result, save_file):
        assert isinstance(task.result, PrefectResult)
        assert task.checkpoint is True
    for task in (save_db_result, load_db_result, save_file, load_file):
        assert task.name == task.run.__name__


# --- files -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "file_type", "type_string"),
    [
        ("line one\nline two ü\n", "text", "lume_services.files.file:File[TextSerializer]"),
        ({"a": [1, 2.5], "b": "ü"}, "yaml", "lume_services.files.file:File[YAMLSerializer]"),
        ({"x": [1.0, 2.5], "name": "beam"}, "json", "compiler.runtime.files:JSONFile"),
        (b"\x00\x01binary\xff", "bytes", "compiler.runtime.files:BytesFile"),
    ],
)
def test_files_round_trip_on_the_local_filesystem(
    runtime_env: Path, value: object, file_type: str, type_string: str
) -> None:
    reference = save_file.run(value, "out/data.file", file_type)
    assert reference == {
        "filename": str(runtime_env / "out" / "data.file"),
        "file_type_string": type_string,
        "filesystem_identifier": "local",
    }
    json.dumps(reference)
    assert load_file.run(reference) == value


def test_a_mounted_file_is_named_by_its_alias_and_read_through_any_mount_point(
    runtime_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = runtime_env / "host_share"
    monkeypatch.setenv("FLOWC_MOUNT", f"{host}:/mnt/lume")
    reference = save_file.run({"x": [1, 2]}, "runs/dist.json")
    assert reference == {
        "filename": "/mnt/lume/runs/dist.json",
        "file_type_string": "compiler.runtime.files:JSONFile",
        "filesystem_identifier": "mounted",
    }
    assert json.loads((host / "runs" / "dist.json").read_text()) == {"x": [1, 2]}
    assert (
        save_file.run("t", "/mnt/lume/a.txt", "text")["filename"] == "/mnt/lume/a.txt"
    )
    assert (
        save_file.run("t", str(host / "b.txt"), "text")["filename"] == "/mnt/lume/b.txt"
    )

    # Another container mounts the same share elsewhere on its side.
    other = runtime_env / "container_view"
    (host).rename(other)
    monkeypatch.setenv("FLOWC_MOUNT", f"{other}:/mnt/lume")
    assert load_file.run(reference) == {"x": [1, 2]}


def test_mounted_files_stay_inside_the_mount(
    runtime_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWC_MOUNT", f"{runtime_env}:/mnt/lume")
    with pytest.raises(ValueError, match="outside the mounted filesystem"):
        save_file.run("x", "/etc/escape.txt", "text")
    with pytest.raises(ValueError, match="outside the mounted filesystem"):
        save_file.run("x", "../escape.txt", "text")
    reference = {
        "filename": "/elsewhere/a.json",
        "file_type_string": "compiler.runtime.files:JSONFile",
        "filesystem_identifier": "mounted",
    }
    with pytest.raises(
        FileReferenceError, match="not under the mount alias '/mnt/lume'"
    ):
        load_file.run(reference)


def test_a_mounted_reference_without_a_mount_says_what_to_set(
    runtime_env: Path,
) -> None:
    reference = {
        "filename": "/mnt/lume/a.json",
        "file_type_string": "compiler.runtime.files:JSONFile",
        "filesystem_identifier": "mounted",
    }
    with pytest.raises(FileReferenceError, match="FLOWC_MOUNT is not set"):
        load_file.run(reference)


def test_a_missing_file_names_the_reference(runtime_env: Path) -> None:
    reference = save_file.run([1, 2, 3], "gone.json")
    (runtime_env / "gone.json").unlink()
    with pytest.raises(FileReferenceError) as raised:
        load_file.run(reference)
    assert str(raised.value) == (
        f"cannot load file reference {reference!r}: no file at "
        f"{str(runtime_env / 'gone.json')!r}"
    )


def test_an_unreadable_file_names_the_reference_and_the_format(
    runtime_env: Path,
) -> None:
    reference = save_file.run([1], "broken.json")
    (runtime_env / "broken.json").write_text("{not json")
    with pytest.raises(
        FileReferenceError,
        match=r"cannot load file reference .*broken\.json.* "
        r"is not a valid json file",
    ):
        load_file.run(reference)


def test_bad_file_references_are_reported_not_raised_as_key_errors(
    runtime_env: Path,
) -> None:
    with pytest.raises(FileReferenceError, match="is not a file reference"):
        load_file.run({"filename": "x"})
    unknown_type = {
        "filename": str(runtime_env / "x"),
        "file_type_string": "lume_services.files.file:HDF5File",
        "filesystem_identifier": "local",
    }
    with pytest.raises(FileReferenceError, match="unknown file type"):
        load_file.run(unknown_type)
    with pytest.raises(FileReferenceError, match="unknown filesystem 's3'"):
        load_file.run({**unknown_type, "filesystem_identifier": "s3"})


def test_save_file_rejects_a_value_its_type_cannot_hold(runtime_env: Path) -> None:
    with pytest.raises(TypeError, match="a text file holds a str, not dict"):
        save_file.run({"a": 1}, "a.txt", "text")
    with pytest.raises(
        ValueError,
        match="unknown file type 'toml'; known: bytes, hdf5, image, json, text, yaml",
    ):
        save_file.run({"a": 1}, "a.toml", "toml")


def test_a_failed_file_load_fails_the_task_with_the_reference(
    runtime_env: Path,
) -> None:
    reference = {
        "filename": str(runtime_env / "absent.json"),
        "file_type_string": "compiler.runtime.files:JSONFile",
        "filesystem_identifier": "local",
    }
    with Flow("consumer") as flow:
        loaded = load_file(Parameter("file_rep"))
    state = flow.run(parameters={"file_rep": reference})
    assert state.is_failed()
    assert "no file at" in state.result[loaded].message
    assert "absent.json" in state.result[loaded].message


# --- MongoDB (LUME-services' results database) ------------------------------------------------


def test_mongodb_store_holds_lume_documents_in_the_project_collection(
    runtime_env: Path, monkeypatch: pytest.MonkeyPatch, mongo_url: str
) -> None:
    import pymongo

    monkeypatch.setenv("FLOWC_RESULTS_DB", mongo_url)
    # nx-27017 shares collections between databases, so the collection itself is unique per test.
    project = f"lume_{uuid.uuid4().hex[:12]}"
    reference = _saved_reference(project_name=project)
    again = _saved_reference(project_name=project)
    assert again == reference

    client = pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
    try:
        database = client.get_default_database()
        assert project in database.list_collection_names()
        documents = list(database[project].find())
        assert len(documents) == 1
        (raw,) = documents
        assert set(raw) - {"_id"} == set(RESULT_FIELDS)
        assert raw["unique_hash"] == reference["query"]["unique_hash"]
        assert raw["outputs"] == OUTPUTS and raw["inputs"] == INPUTS
        assert raw["result_type_string"] == GENERIC_RESULT_TYPE
        assert isinstance(raw["date_modified"], datetime)
    finally:
        client.close()

    assert load_db_result.run(reference, ["outputs", "screens", 0, "sigma_x"]) == 0.001
    with pytest.raises(ResultLookupError, match="missing key 'nope'"):
        load_db_result.run(reference, ["outputs", "nope"])
    with pytest.raises(
        ResultLookupError, match=f"no result matches .* in collection '{project}'"
    ):
        load_db_result.run({**reference, "query": {"unique_hash": "x"}}, ["outputs"])


def test_mongodb_and_sqlite_return_the_same_document(
    runtime_env: Path, mongo_url: str
) -> None:
    document = result_document(INPUTS, OUTPUTS, flow_id="impact")
    query = {"unique_hash": document["unique_hash"]}
    found = []
    for url in (mongo_url, f"sqlite:///{runtime_env / 'same.db'}"):
        with open_results_store(url) as store:
            store.insert("lume", document)
            found.append(store.find_one("lume", query))
    assert found[0] == found[1] == document


def test_mongodb_url_without_a_database_uses_results(
    runtime_env: Path, monkeypatch: pytest.MonkeyPatch, mongo_server: str
) -> None:
    import pymongo

    monkeypatch.setenv("FLOWC_RESULTS_DB", mongo_server)
    reference = _saved_reference(project_name="default_db_check")
    client = pymongo.MongoClient(mongo_server, serverSelectionTimeoutMS=5000)
    try:
        assert (
            client["results"]["default_db_check"].count_documents(reference["query"])
            == 1
        )
    finally:
        client.close()
