"""LUME-services' side of the format tests: run in the Python 3.9 LUME environment, not by pytest.

`python lume_driver.py ACTIONS.json` configures LUME-services from the environment (as its
`configure_lume_services` task does), runs each action with LUME's own tasks (SaveFile, LoadFile,
SaveDBResult, LoadDBResult) and its own Result and File types, and prints one JSON line: a list
with `{"value": ...}` or `{"error": "..."}` per action. Actions:

- `{"op": "save_file", "kind": "text|yaml|image|hdf5", "value": ..., "filename", "filesystem"}`
  (image: `{"size": [w, h], "color": [r, g, b]}`; hdf5: any JSON value, archived in a Thing)
- `{"op": "load_file", "file_rep": {...}}` (an image comes back as mode, size and pixels,
  an hdf5 Thing as its value)
- `{"op": "save_result", "inputs", "outputs", "flow_id", "project_name"}` -> the reference
- `{"op": "load_result", "result_rep", "attribute_index"}`
- `{"op": "result_hash", "inputs", "outputs", "flow_id"}` -> LUME's unique_hash
"""

import json
import sys
import traceback

__version__ = "1.0"  # LUME's HDF5Serializer records the version of the archived object's package


class Thing:
    """The smallest object LUME's HDF5Serializer archives and loads (lume-base's Base protocol)."""

    def __init__(self, value=None):
        self.value = value

    def archive(self, h5):
        h5.attrs["value"] = json.dumps(self.value)

    def load_archive(self, h5):
        self.value = json.loads(h5.attrs["value"])


def _image(spec):
    from PIL import Image

    return Image.new("RGB", tuple(spec["size"]), tuple(spec["color"]))


def _shown(value):
    if hasattr(value, "getdata") and hasattr(value, "mode"):
        return {"mode": value.mode, "size": list(value.size), "pixels": [list(p) for p in list(value.getdata())[:4]]}
    if isinstance(value, Thing):
        return {"thing": value.value}
    return value


def _run(action):
    from lume_services.files import HDF5File, ImageFile, TextFile, YAMLFile
    from lume_services.results import Result
    from lume_services.tasks import LoadDBResult, LoadFile, SaveDBResult, SaveFile

    op = action["op"]
    if op == "save_file":
        file_types = {"text": TextFile, "yaml": YAMLFile, "image": ImageFile, "hdf5": HDF5File}
        value = action["value"]
        if action["kind"] == "image":
            value = _image(value)
        elif action["kind"] == "hdf5":
            value = Thing(value)
        return SaveFile().run(
            obj=value,
            filename=action["filename"],
            filesystem_identifier=action.get("filesystem", "local"),
            file_type=file_types[action["kind"]],
        )
    if op == "load_file":
        return _shown(LoadFile().run(action["file_rep"]))
    if op in ("save_result", "result_hash"):
        result = Result(
            inputs=action["inputs"],
            outputs=action["outputs"],
            flow_id=action["flow_id"],
            project_name=action.get("project_name", "local"),
        )
        if op == "result_hash":
            return result.unique_hash
        return SaveDBResult().run(result)
    if op == "load_result":
        return _shown(LoadDBResult().run(action["result_rep"], action["attribute_index"]))
    raise ValueError(f"unknown op {op!r}")


def main():
    with open(sys.argv[1]) as handle:
        actions = json.load(handle)
    from lume_services import config

    config.configure()
    outcomes = []
    for action in actions:
        try:
            outcomes.append({"value": _run(action)})
        except Exception as exc:  # reported per action, for the test to assert on
            outcomes.append({"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})
    sys.stdout.write("\n" + json.dumps(outcomes) + "\n")


if __name__ == "__main__":
    main()
