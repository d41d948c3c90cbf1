"""invoke tasks: argument parsing and printing only; the logic lives in deploy/, harness/, emulator/.

`invoke --list` shows them; the `edgeloop` console command offers the same tasks.
Each section below belongs to one part of the tool; keep tasks thin.
"""

from __future__ import annotations

from pathlib import Path

from invoke import Collection, Program, task

from deploy import TOOL_VERSION
from harness.console import console, user_errors

# ---- emulator ----------------------------------------------------------------------------

# ---- build pipeline (convert, info, inputs, bundle, clean) -------------------------------

@task(iterable=["input_dim", "out_node"], help={
    "model": "source model: .onnx, or a TorchScript .pt/.pth (needs --input-dim and PyTorch)",
    "output": "where to write the float container (default: the cached artifact under build/)",
    "input-dim": "NAME=1,3,224,224 for a dynamic or overridden input (repeatable)",
    "out-node": "keep only the subgraph producing this node/tensor (repeatable)",
    "cache": "reuse an identical earlier conversion (default on)"})
@user_errors
def convert(c, model, output=None, input_dim=None, out_node=None, cache=True):
    """Convert a model into a float container (like snpe-onnx-to-dlc)."""
    from deploy.convert import convert as convert_model
    from deploy.convert import parse_input_dim
    from deploy.opsupport import render_unsupported

    dims = dict(parse_input_dim(text) for text in input_dim or [])
    result = convert_model(Path(model), Path(output) if output else None, input_dims=dims,
                           out_nodes=list(out_node or []), cache=cache)
    table = render_unsupported(result.ops)
    if table is not None:
        console.print(table)
    shapes = ", ".join(f"{t.name} {list(t.shape)}" for t in result.meta.inputs)
    console.print(f"{'cached' if result.cached else 'converted'}: {result.path} ({len(result.ops)} nodes; "
                  f"inputs {shapes})")


@task(help={"container": "a container made by convert or quantize", "json": "print JSON instead of tables"})
@user_errors
def info(c, container, json=False):
    """Show a container's layers, shapes, params, MACs, memory and encodings (like snpe-dlc-info)."""
    from deploy.info import inspect_container, render_info

    details = inspect_container(Path(container))
    if json:
        console.print_json(data=details.to_json())
        return
    for renderable in render_info(details):
        console.print(renderable)


@task(iterable=["source"], help={
    "source": ".npy file, PNG/JPEG image, or folder of them (repeatable)",
    "output": "folder for the .raw files and input_list.txt",
    "container": "take name, shape, layout and dtype from this container's input, and validate the result",
    "name": "input tensor name for name:=path items (default: bare paths, or the container's input)",
    "size": "image size HEIGHT,WIDTH (default: the container's, else the image's)",
    "mean": "per-channel mean, subtracted after --scale (e.g. 123.7,116.3,103.5)",
    "std": "per-channel std to divide by", "scale": "pixel multiplier applied first (e.g. 0.00392 for 1/255)",
    "layout": "NCHW or NHWC (default: the container's, else NCHW)", "gray": "read images as one channel",
    "dtype": "numpy dtype of the raw files", "check": "only validate this input list against --container"})
@user_errors
def inputs(c, source=None, output=None, container=None, name=None, size=None, mean="0", std="1", scale=1.0,
           layout="NCHW", gray=False, dtype="float32", check=None):
    """Make .raw inputs and an input_list.txt from .npy files and images, or validate a list."""
    from deploy.errors import EdgeloopError
    from deploy.inputs import Preprocess, parse_numbers, prepare_inputs, validate

    if check:
        if not container:
            raise EdgeloopError("--check needs --container", "give the container the list is for")
        console.print(f"{check}: {validate(Path(check), Path(container))} inferences match {container}")
        return
    if not source or not output:
        raise EdgeloopError("give --source (repeatable) and --output", "or --check LIST --container C")
    pre = Preprocess(size=parse_numbers(size, "size", int) if size else None, mean=parse_numbers(mean, "mean"),
                     std=parse_numbers(std, "std"), scale=float(scale), layout=layout.upper(),
                     channels=1 if gray else 3, dtype=dtype)
    prepared = prepare_inputs([Path(s) for s in source], Path(output),
                              container=Path(container) if container else None, pre=pre, input_name=name)
    console.print(f"wrote {len(prepared.files)} raw files and {prepared.list_path}")


# ---- quantizer ----------------------------------------------------------------------------

# ---- deploy -------------------------------------------------------------------------------

# ---- farm and reports ---------------------------------------------------------------------


@task
@user_errors
def version(c):
    """Print edgeloop's version."""
    console.print(f"edgeloop {TOOL_VERSION}")


ns = Collection.from_module(__import__(__name__))


def main() -> None:
    """Entry point of the `edgeloop` console command."""
    Program(namespace=ns, name="edgeloop", binary="edgeloop", version=TOOL_VERSION).run()
