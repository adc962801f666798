"""The first two steps of the Python chain, shared by chain.py (int8) and int4_chain.py (q4):
a plain torch.onnx.export at opset 17 with dynamic batch and sequence, then onnxruntime's
transformer optimizer for BERT-like graphs. Used only by `npm run bench`."""
import os

import torch
from onnxruntime.transformers import optimizer

NAMES = ["input_ids", "attention_mask", "token_type_ids"]
OUTPUTS = ["last_hidden_state", "pooler_output"]


def export(model, inputs, out):
    """torch.onnx.export of the model on these (ids, mask, types) tensors; returns the file."""
    axes = {n: {0: "batch_size", 1: "sequence_length"} for n in NAMES}
    axes.update({"last_hidden_state": {0: "batch_size", 1: "sequence_length"}, "pooler_output": {0: "batch_size"}})
    plain = os.path.join(out, "model.onnx")
    torch.onnx.export(model, inputs, plain, input_names=NAMES, output_names=OUTPUTS,
                      dynamic_axes=axes, opset_version=17, do_constant_folding=True, dynamo=False)
    return plain


def optimize(plain, config, out):
    """onnxruntime's transformer optimizer (model_type bert) on the export; returns the file."""
    opt = optimizer.optimize_model(plain, model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size)
    optimized = os.path.join(out, "model_optimized.onnx")
    opt.save_model_to_file(optimized)
    return optimized
