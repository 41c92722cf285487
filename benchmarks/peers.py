"""The peers, each built once per case: torch's functional call and an ONNX Runtime session."""
from __future__ import annotations

import numpy as np


def torch_conv(case, x, w, b):
    import torch

    xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))
    s = case.settings

    def call():
        return torch.nn.functional.conv2d(xt, wt, bt, stride=s["stride"], padding=s["padding"],
                                          groups=s["groups"])
    return call


def torch_backward(case, x, w, b, grad_out):
    """Times ``out.backward`` only; the forward graph is rebuilt outside the timer."""
    import torch

    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    bt = torch.from_numpy(b).requires_grad_()
    gt = torch.from_numpy(grad_out)
    s = case.settings
    state = {}

    def prepare():
        xt.grad = wt.grad = bt.grad = None
        state["out"] = torch.nn.functional.conv2d(xt, wt, bt, **s)

    def call():
        state["out"].backward(gt)
        return xt.grad, wt.grad, bt.grad
    return prepare, call


def onnx_conv(case, x, w, b):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    p, s = case.pad, case.stride
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=[s, s], pads=[p] * 4,
                            group=case.groups)
    elem = TensorProto.FLOAT if x.dtype == np.float32 else TensorProto.DOUBLE
    graph = helper.make_graph(
        [node], "conv", [helper.make_tensor_value_info("x", elem, list(x.shape))],
        [helper.make_tensor_value_info("y", elem, None)],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"x": x})[0]
