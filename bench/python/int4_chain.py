"""The Python chain's 4-bit model, the one albertkit's q4 is measured against: transformers
checkpoint -> plain torch.onnx.export (opset 17) -> onnxruntime transformer optimizer ->
onnxruntime's MatMulNBitsQuantizer (block 32, symmetric: transformers.js's q4). Embeddings stay
fp32 (that quantizer rewrites MatMul only). Used only by `npm run bench`.

usage: int4_chain.py CHECKPOINT OUT_DIR   (prints one JSON line: step times and the file)
"""
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # importing chain_steps must leave no __pycache__ behind
t0 = time.perf_counter()
import onnx  # noqa: E402
import torch  # noqa: E402
from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer  # noqa: E402
from transformers import AutoModel  # noqa: E402
from chain_steps import export, optimize  # noqa: E402

ckpt, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
model = AutoModel.from_pretrained(ckpt).eval()
cfg = model.config
ids = torch.randint(5, cfg.vocab_size, (2, 64))
mask = torch.ones_like(ids)
types = torch.zeros_like(ids)
plain = export(model, (ids, mask, types), out)
t_export = time.perf_counter()
optimized = optimize(plain, cfg, out)
t_opt = time.perf_counter()
q = MatMulNBitsQuantizer(onnx.load(optimized), block_size=32, is_symmetric=True)
q.process()
q4 = os.path.join(out, "model_q4.onnx")
q.model.save_model_to_file(q4)
t_quant = time.perf_counter()
print(json.dumps({"export_s": t_export - t0, "optimize_s": t_opt - t_export, "quantize_s": t_quant - t_opt, "file": q4}))
