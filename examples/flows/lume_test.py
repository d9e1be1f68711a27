"""flow1, flow2, flow3: the text flows LUME-services tests its flow-of-flows with.

flow1 joins two texts and saves the result as a text file; flow2 joins two texts and stores
them as a database result; flow3 loads flow1's file and appends to it. Together they exercise
the raw, file and db mappings.
"""

from __future__ import annotations

import hashlib
import os

from prefect import Flow, Parameter, task
from prefect.engine.results import PrefectResult

from compiler.runtime import load_file, save_db_result, write_file


@task(name="append_text", result=PrefectResult(), checkpoint=True)
def append_text(text1: str, text2: str) -> str:
    """Join two texts; the raw result the LUME tests map into the next flow."""
    return f"{text1}{text2}"


@task(name="save_text", result=PrefectResult(), checkpoint=True)
def save_text(text: str, output_dir: str) -> dict:
    """Save under a content-addressed name and return the file reference."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return write_file(text, os.path.join(output_dir, f"text-{digest}.txt"), "text")


@task(name="text_inputs")
def text_inputs(text1: str, text2: str) -> dict[str, str]:
    """flow2's inputs as the stored result records them."""
    return {"text1": text1, "text2": text2}


@task(name="text_outputs")
def text_outputs(text: str) -> dict[str, str]:
    """flow2's outputs as the stored result records them (`outputs.text`)."""
    return {"text": text}


with Flow("flow1") as flow1:
    text1 = Parameter("text1", required=True)
    text2 = Parameter("text2", required=True)
    output_dir = Parameter("output_dir", default=".flowc/files")
    save_text(append_text(text1, text2), output_dir)


with Flow("flow2") as flow2:
    text1 = Parameter("text1", required=True)
    text2 = Parameter("text2", required=True)
    joined = append_text(text1, text2)
    save_db_result(inputs=text_inputs(text1, text2), outputs=text_outputs(joined))


with Flow("flow3") as flow3:
    file_rep = Parameter("file_rep", required=True)
    suffix = Parameter("suffix", default="")
    append_text(load_file(file_rep), suffix)
