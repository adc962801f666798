"""The Python chain albertkit is measured against: transformers checkpoint -> plain
torch.onnx.export (opset 17) -> onnxruntime transformer optimizer -> quantize_dynamic (per-channel
int8) -> a parity check of the int8 model against PyTorch. Used only by `npm run bench`.

usage: chain.py CHECKPOINT OUT_DIR   (prints one JSON line of step times)
"""
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # importing chain_steps must leave no __pycache__ behind
t0 = time.perf_counter()
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: E402
from transformers import AutoModel  # noqa: E402
from chain_steps import export, optimize  # noqa: E402

t_import = time.perf_counter()
ckpt, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
model = AutoModel.from_pretrained(ckpt).eval()
cfg = model.config
t_load = time.perf_counter()

ids = torch.randint(5, cfg.vocab_size, (2, 64))
mask = torch.ones_like(ids)
mask[1, 40:] = 0
types = torch.zeros_like(ids)
plain = export(model, (ids, mask, types), out)
t_export = time.perf_counter()

optimized = optimize(plain, cfg, out)
t_opt = time.perf_counter()

int8 = os.path.join(out, "model_int8.onnx")
quantize_dynamic(optimized, int8, per_channel=True, weight_type=QuantType.QInt8,
                 extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
t_quant = time.perf_counter()

with torch.no_grad():
    ref = model(input_ids=ids, attention_mask=mask, token_type_ids=types)
sess = ort.InferenceSession(int8, providers=["CPUExecutionProvider"])
got = sess.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "token_type_ids": types.numpy()})
cos = {}
for name, r, g in zip(["last_hidden_state", "pooler_output"], [ref.last_hidden_state, ref.pooler_output], got):
    r = r.numpy().astype(np.float64).ravel()
    g = g.astype(np.float64).ravel()
    cos[name] = float(r @ g / np.sqrt((r @ r) * (g @ g)))
t_verify = time.perf_counter()
print(json.dumps({
    "import_s": t_import - t0, "load_s": t_load - t_import, "export_s": t_export - t_load, "optimize_s": t_opt - t_export,
    "quantize_s": t_quant - t_opt, "verify_s": t_verify - t_quant, "cosine": cos,
    "files": {"plain": plain, "optimized": optimized, "int8": int8},
}))
