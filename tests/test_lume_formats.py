"""LUME-services' formats both ways, with LUME-services itself installed (its Python 3.9 env).

LUME's own tasks (SaveFile, LoadFile, SaveDBResult, LoadDBResult, in its environment) load
what flowc's runtime saved, and flowc's runtime loads what they saved: file references of
every LUME file type on the local and the mounted filesystem, result references and documents
in one results database (a real nx-27017), with LUME's unique_hash. And the runtime itself
imports and works on that Python 3.9 with LUME's pins (pydantic 1.9).
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from compiler.runtime.files import FILE_TYPES, LUME_FILE_TYPE_STRINGS, FileReferenceError, read_file, write_file
from compiler.runtime.results import GENERIC_RESULT_TYPE, fetch_result_value, store_result, unique_result_hash
from compiler.runtime_dist import runtime_version
from tests.lume_env import (
    LumeEnv,
    flowc_store_url,
    lume_env_or_skip,
    lume_settings,
    run_lume,
    run_python39,
    unique,
    value_of,
)

REPO = Path(__file__).resolve().parents[1]


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid RGB PNG, encoded here by hand (flowc's side has no Pillow)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def lume() -> LumeEnv:
    return lume_env_or_skip()


@pytest.fixture(scope="module")
def exchange(lume: LumeEnv, mongo_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One round trip: LUME saves, flowc loads and saves, LUME loads; every outcome kept."""
    scratch = tmp_path_factory.mktemp("lume_formats")
    mount = scratch / "share"
    mount.mkdir()
    database = unique("formats")
    project = unique("proj")
    settings = lume_settings(mongo_server, database, scratch, mount)
    url = flowc_store_url(mongo_server, database)
    text = f"hey you {unique('t')} ü"
    yaml_value = {"name": "beam", "sizes": [1.5, 2.5], "nested": {"on": True}}
    lume_inputs = {"input1": text}
    lume_outputs = {"output1": text, "emit": 2.5e-7}

    saved_by_lume = run_lume(
        lume,
        [
            {"op": "save_file", "kind": "text", "value": text, "filename": str(scratch / "lume.txt")},
            {"op": "save_file", "kind": "yaml", "value": yaml_value, "filename": str(scratch / "lume.yml")},
            {"op": "save_file", "kind": "image", "value": {"size": [3, 2], "color": [10, 20, 30]},
             "filename": str(scratch / "lume.png")},
            {"op": "save_file", "kind": "hdf5", "value": {"k": [1, 2]}, "filename": str(scratch / "lume.h5")},
            {"op": "save_file", "kind": "text", "value": text, "filename": str(mount / "lume_mounted.txt"),
             "filesystem": "mounted"},
            {"op": "save_result", "inputs": lume_inputs, "outputs": lume_outputs, "flow_id": "flow2",
             "project_name": project},
        ],
        settings,
        scratch,
    )
    lume_refs = [value_of(outcome) for outcome in saved_by_lume]

    # flowc's side, in this interpreter: load LUME's, save its own.
    flowc_inputs = {"text1": text, "n": 3.0}
    flowc_outputs = {"output1": text.upper(), "screens": [0.1, 0.2]}
    with mock.patch.dict(os.environ, {"FLOWC_MOUNT": f"{mount}:{mount}"}):
        loaded_by_flowc = [read_file(ref) for ref in lume_refs[:2]] + [read_file(lume_refs[3])]
        loaded_by_flowc.append(read_file(lume_refs[4]))
        flowc_refs = [
            write_file(text, str(scratch / "flowc.txt"), "text", "local"),
            write_file(yaml_value, str(scratch / "flowc.yml"), "yaml", "local"),
            write_file(_png(2, 2, (200, 100, 50)), str(scratch / "flowc.png"), "image", "local"),
            # HDF5: flowc hands on the bytes of an archive LUME wrote; LUME loads the object.
            write_file(loaded_by_flowc[2], str(scratch / "flowc.h5"), "hdf5", "local"),
            write_file(text, str(mount / "flowc_mounted.txt"), "text", "mounted"),
        ]
    lume_result_value = fetch_result_value(lume_refs[5], ["outputs", "output1"], url=url)
    flowc_result_ref = store_result(flowc_inputs, flowc_outputs, project_name=project, flow_id="flowc_flow", url=url)

    loaded_by_lume = run_lume(
        lume,
        [
            *({"op": "load_file", "file_rep": ref} for ref in flowc_refs),
            {"op": "load_result", "result_rep": flowc_result_ref, "attribute_index": ["outputs", "output1"]},
            {"op": "load_result", "result_rep": flowc_result_ref, "attribute_index": ["inputs", "n"]},
            {"op": "result_hash", "inputs": flowc_inputs, "outputs": flowc_outputs, "flow_id": "flowc_flow"},
        ],
        settings,
        scratch,
    )
    # flowc's image loader needs Pillow: run it where Pillow is, LUME's environment.
    image_by_flowc = run_python39(
        lume,
        "from compiler.runtime.files import read_file\n"
        "image = read_file(PAYLOAD)\n"
        "print(json.dumps([image.mode, list(image.size), [list(p) for p in list(image.getdata())[:2]]]))\n",
        lume_refs[2],
        scratch,
        {},
    )
    yield {
        "scratch": scratch, "mount": mount, "text": text, "yaml": yaml_value, "project": project,
        "database": database, "url": url, "lume_refs": lume_refs, "flowc_refs": flowc_refs,
        "loaded_by_flowc": loaded_by_flowc, "loaded_by_lume": loaded_by_lume, "image_by_flowc": image_by_flowc,
        "lume_result_value": lume_result_value, "flowc_result_ref": flowc_result_ref,
        "lume_inputs": lume_inputs, "lume_outputs": lume_outputs,
        "flowc_inputs": flowc_inputs, "flowc_outputs": flowc_outputs,
    }


def test_file_references_are_lumes_to_the_key(exchange: dict[str, Any]) -> None:
    lume_refs, flowc_refs = exchange["lume_refs"][:5], exchange["flowc_refs"]
    assert [ref["file_type_string"] for ref in lume_refs] == [
        "lume_services.files.file:File[TextSerializer]",
        "lume_services.files.file:File[YAMLSerializer]",
        "lume_services.files.file:File[ImageSerializer]",
        "lume_services.files.file:File[HDF5Serializer]",
        "lume_services.files.file:File[TextSerializer]",
    ]
    assert [ref["file_type_string"] for ref in flowc_refs] == [ref["file_type_string"] for ref in lume_refs]
    assert set(LUME_FILE_TYPE_STRINGS) == {ref["file_type_string"] for ref in lume_refs}
    assert [FILE_TYPES[k].type_string for k in ("text", "yaml", "image", "hdf5")] == list(LUME_FILE_TYPE_STRINGS)
    for lume_ref, flowc_ref in zip(lume_refs, flowc_refs):
        assert list(lume_ref) == list(flowc_ref) == ["filename", "file_type_string", "filesystem_identifier"]
        assert lume_ref["filesystem_identifier"] == flowc_ref["filesystem_identifier"]
    assert lume_refs[4]["filename"] == str(exchange["mount"] / "lume_mounted.txt")


def test_flowc_loads_the_files_lume_saved(exchange: dict[str, Any]) -> None:
    text, yaml_value, hdf5_bytes, mounted = exchange["loaded_by_flowc"]
    assert text == exchange["text"]
    assert yaml_value == exchange["yaml"]
    assert hdf5_bytes[:8] == b"\x89HDF\r\n\x1a\n" and hdf5_bytes == (exchange["scratch"] / "lume.h5").read_bytes()
    assert mounted == exchange["text"]
    assert exchange["image_by_flowc"] == ["RGB", [3, 2], [[10, 20, 30], [10, 20, 30]]]


def test_lume_loads_the_files_flowc_saved(exchange: dict[str, Any]) -> None:
    text, yaml_value, image, thing, mounted = (value_of(o) for o in exchange["loaded_by_lume"][:5])
    assert text == exchange["text"]
    assert yaml_value == exchange["yaml"]
    assert image == {"mode": "RGB", "size": [2, 2], "pixels": [[200, 100, 50]] * 4}
    assert thing == {"thing": {"k": [1, 2]}}
    assert mounted == exchange["text"]


def test_result_references_and_hashes_are_lumes(exchange: dict[str, Any]) -> None:
    lume_ref, flowc_ref = exchange["lume_refs"][5], exchange["flowc_result_ref"]
    assert lume_ref == {
        "project_name": exchange["project"],
        "result_type_string": "lume_services.results.generic.Result",
        "query": {"unique_hash": unique_result_hash(exchange["lume_inputs"], exchange["lume_outputs"], "flow2")},
    }
    assert GENERIC_RESULT_TYPE == lume_ref["result_type_string"]
    assert list(flowc_ref) == list(lume_ref)
    assert flowc_ref["result_type_string"] == lume_ref["result_type_string"]
    lume_hash_of_flowc_result = value_of(exchange["loaded_by_lume"][7])
    assert flowc_ref["query"] == {"unique_hash": lume_hash_of_flowc_result}


def test_each_side_loads_the_others_stored_result(exchange: dict[str, Any]) -> None:
    assert exchange["lume_result_value"] == exchange["text"]
    assert value_of(exchange["loaded_by_lume"][5]) == exchange["flowc_outputs"]["output1"]
    assert value_of(exchange["loaded_by_lume"][6]) == 3.0


def test_stored_documents_have_the_same_fields(exchange: dict[str, Any]) -> None:
    import pymongo

    client = pymongo.MongoClient(exchange["url"], serverSelectionTimeoutMS=5000)
    try:
        collection = client[exchange["database"]][exchange["project"]]
        lume_doc = collection.find_one(exchange["lume_refs"][5]["query"])
        flowc_doc = collection.find_one(exchange["flowc_result_ref"]["query"])
    finally:
        client.close()
    assert lume_doc is not None and flowc_doc is not None
    assert list(lume_doc) == list(flowc_doc) == [
        "_id", "flow_id", "inputs", "outputs", "date_modified", "unique_hash", "result_type_string",
    ]
    for field in ("flow_id", "unique_hash", "result_type_string"):
        assert isinstance(flowc_doc[field], str) and type(lume_doc[field]) is type(flowc_doc[field])
    assert type(lume_doc["date_modified"]) is type(flowc_doc["date_modified"])
    assert lume_doc["flow_id"] == "flow2" and flowc_doc["flow_id"] == "flowc_flow"


def test_the_runtime_imports_and_runs_on_lumes_python39(lume: LumeEnv, tmp_path: Path) -> None:
    code = (
        "import importlib, importlib.metadata, pkgutil, sys\n"
        "import compiler, compiler.runtime, pydantic\n"
        "names = sorted(m.name for m in pkgutil.walk_packages(compiler.runtime.__path__, 'compiler.runtime.'))\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "from compiler.runtime import load_db_result, load_file, save_db_result, save_file\n"
        "ref = save_db_result.run({'a': 1.5}, {'b': [1, 2]}, 'lume')\n"
        "file_ref = save_file.run({'x': 'ü'}, 'out/x.json')\n"
        "print(json.dumps({'python': list(sys.version_info[:2]), 'pydantic': pydantic.VERSION,\n"
        "    'installed': importlib.metadata.version('flowc-runtime'), 'modules': names,\n"
        "    'file': compiler.runtime.__file__, 'loaded': load_db_result.run(ref, ['outputs', 'b', 1]),\n"
        "    'file_value': load_file.run(file_ref),\n"
        "    'stages': sorted(m for m in sys.modules if m.startswith('compiler') and not m.startswith('compiler.runtime'))}))\n"
    )
    info = run_python39(lume, code, None, tmp_path, {"FLOWC_RESULTS_DB": f"sqlite:///{tmp_path / 'r.db'}"})
    assert info["python"] == [3, 9]
    assert str(info["pydantic"]).startswith("1.9")
    assert info["installed"] == runtime_version()  # the runtime of this checkout, as installed
    assert "compiler.runtime.tasks" in info["modules"] and "compiler.runtime.files" in info["modules"]
    assert not info["file"].startswith(str(REPO))
    assert info["loaded"] == 2 and info["file_value"] == {"x": "ü"}
    # Outside compiler.runtime, only what the runtime wheel ships (keys.py: stdlib only), no compiler stage.
    assert info["stages"] == ["compiler", "compiler.keys"]


def test_older_flowc_references_still_load(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("old", encoding="utf-8")
    for type_string in ("lume_services.files.file:TextFile", "compiler.runtime.files:TextFile"):
        reference = {"filename": str(tmp_path / "a.txt"), "file_type_string": type_string,
                     "filesystem_identifier": "local"}
        assert read_file(reference) == "old"
    url = f"sqlite:///{tmp_path / 'r.db'}"
    reference = store_result({"i": 1.0}, {"o": 2.0}, project_name="p", flow_id="f", url=url)
    legacy = {**reference, "result_type_string": "lume_services.results.generic:Result"}
    assert fetch_result_value(legacy, ["outputs", "o"], url=url) == 2.0
    assert json.dumps(legacy)


def test_image_and_hdf5_files_check_what_they_hold(tmp_path: Path) -> None:
    png = _png(1, 1, (1, 2, 3))
    reference = write_file(png, str(tmp_path / "a.png"), "image", "local")
    assert (tmp_path / "a.png").read_bytes() == png
    try:
        import PIL  # noqa: F401
    except ImportError:
        with pytest.raises(ModuleNotFoundError, match=r"loading an image file needs Pillow"):
            read_file(reference)
    with pytest.raises(TypeError, match="an image file holds a Pillow image or encoded image bytes, not dict"):
        write_file({}, str(tmp_path / "b.png"), "image", "local")
    with pytest.raises(ValueError, match="no HDF5 signature"):
        write_file(b"not hdf5", str(tmp_path / "a.h5"), "hdf5", "local")
    hdf5 = b"\0" * 512 + b"\x89HDF\r\n\x1a\n" + b"rest"  # after a 512-byte user block
    assert read_file(write_file(hdf5, str(tmp_path / "b.h5"), "hdf5", "local")) == hdf5
    (tmp_path / "c.h5").write_bytes(b"plain")
    bad = {"filename": str(tmp_path / "c.h5"), "file_type_string": FILE_TYPES["hdf5"].type_string,
           "filesystem_identifier": "local"}
    with pytest.raises(FileReferenceError, match="is not a valid hdf5 file: no HDF5 signature"):
        read_file(bad)
    with pytest.raises(TypeError, match="a yaml file holds what YAML's safe dumper represents, not object"):
        write_file(object(), str(tmp_path / "a.yml"), "yaml", "local")
