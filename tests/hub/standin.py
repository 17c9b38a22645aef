"""A stand-in Hugging Face Hub on 127.0.0.1: the few routes `huggingface_hub` calls to read a
model's config.json and its safetensors headers.

- `GET /api/models/<repo>/revision/<revision>`: the repo's info (sha, gated, private, files);
- `HEAD` and `GET /<repo>/resolve/<revision>/<file>`: a file, with HTTP range requests.

Errors carry the Hub's `X-Error-Code` headers (RepoNotFound, RevisionNotFound, GatedRepo,
EntryNotFound), which `huggingface_hub` turns into its own exceptions. Checkpoints are built
with the `safetensors` package from small tensors of zero bytes.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import safetensors

# A tiny Llama: hidden 64, 2 layers, 4 heads of 16 (2 key/value heads), MLP 128, vocabulary 256.
TINY_LLAMA = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "intermediate_size": 128,
    "vocab_size": 256,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "max_position_embeddings": 2048,
}
# Its parameters, by hand: embeddings 256 x 64 = 16,384; a layer holds q 64 x 64 = 4,096, k and
# v 32 x 64 = 2,048 each, o 4,096, gate, up and down 128 x 64 = 8,192 each, two norms of 64:
# 36,992; two layers 73,984; the final norm 64; the LM head 256 x 64 = 16,384.
# 16,384 + 73,984 + 64 + 16,384 = 106,816.
TINY_LLAMA_PARAMETERS = 106_816

LINEAR_SHAPES = {  # name -> (out_features, in_features)
    "self_attn.q_proj": (64, 64),
    "self_attn.k_proj": (32, 64),
    "self_attn.v_proj": (32, 64),
    "self_attn.o_proj": (64, 64),
    "mlp.gate_proj": (128, 64),
    "mlp.up_proj": (128, 64),
    "mlp.down_proj": (64, 128),
}
BYTES = {"BF16": 2, "F16": 2, "F32": 4, "I32": 4, "F8_E4M3": 1, "U8": 1}
SAFETENSORS_DTYPES = {
    "BF16": "bfloat16",
    "F16": "float16",
    "F32": "float32",
    "I32": "int32",
    "F8_E4M3": "float8_e4m3fn",
    "U8": "uint8",
}


def tiny_llama_tensors(dtype: str = "BF16") -> dict[str, tuple[str, list[int]]]:
    """The tiny Llama's tensors as transformers names them: name -> (dtype, shape)."""
    tensors = {"model.embed_tokens.weight": (dtype, [256, 64])}
    for layer in range(2):
        prefix = f"model.layers.{layer}"
        for name, (out_features, in_features) in LINEAR_SHAPES.items():
            tensors[f"{prefix}.{name}.weight"] = (dtype, [out_features, in_features])
        tensors[f"{prefix}.input_layernorm.weight"] = (dtype, [64])
        tensors[f"{prefix}.post_attention_layernorm.weight"] = (dtype, [64])
    tensors["model.norm.weight"] = (dtype, [64])
    tensors["lm_head.weight"] = (dtype, [256, 64])
    return tensors


def gptq_tiny_llama_tensors(group_size: int = 32) -> dict[str, tuple[str, list[int]]]:
    """The tiny Llama as AutoGPTQ stores it at 4 bits: each linear layer's qweight packs eight
    4-bit weights an int32 ([in / 8, out]), with qzeros, fp16 scales per group and g_idx;
    embeddings, norms and the LM head stay fp16."""
    tensors = {}
    for name, (dtype, shape) in tiny_llama_tensors("F16").items():
        base = name.removesuffix(".weight")
        if not base.endswith(tuple(LINEAR_SHAPES)):
            tensors[name] = (dtype, shape)
            continue
        out_features, in_features = shape
        tensors[f"{base}.qweight"] = ("I32", [in_features // 8, out_features])
        tensors[f"{base}.qzeros"] = ("I32", [in_features // group_size, out_features // 8])
        tensors[f"{base}.scales"] = ("F16", [in_features // group_size, out_features])
        tensors[f"{base}.g_idx"] = ("I32", [in_features])
    return tensors


def safetensors_file(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    """A .safetensors file of zero-filled tensors, written by the safetensors package."""
    buffers = []
    specs = {}
    for name, (dtype, shape) in tensors.items():
        size = BYTES[dtype]
        for dim in shape:
            size *= dim
        buffer = ctypes.create_string_buffer(size)
        buffers.append(buffer)  # alive until serialize returns
        specs[name] = safetensors.TensorSpec(
            dtype=SAFETENSORS_DTYPES[dtype],
            shape=shape,
            data_ptr=ctypes.addressof(buffer),
            data_len=size,
        )
    return safetensors.serialize(specs, metadata={"format": "pt"})


@dataclass
class Repo:
    files: dict[str, bytes]
    sha: str = ""
    gated: bool = False
    private: bool = False
    tokens: set[str] = field(default_factory=set)  # tokens with access (gated or private)
    delay: float = 0.0  # seconds before every answer (a slow Hub)

    def __post_init__(self) -> None:
        if not self.sha:
            digest = hashlib.sha1()
            for name in sorted(self.files):
                digest.update(name.encode() + self.files[name])
            self.sha = digest.hexdigest()


def model_repo(config: dict[str, Any], tensors=None, shards: int = 1, **options: Any) -> Repo:
    """A repo with config.json and its tensors in one model.safetensors, or in `shards` files
    with a model.safetensors.index.json."""
    files = {"config.json": json.dumps(config, indent=2).encode()}
    if tensors is not None:
        if shards == 1:
            files["model.safetensors"] = safetensors_file(tensors)
        else:
            names = list(tensors)
            weight_map = {}
            for shard in range(shards):
                filename = f"model-{shard + 1:05d}-of-{shards:05d}.safetensors"
                part = {name: tensors[name] for name in names[shard::shards]}
                files[filename] = safetensors_file(part)
                weight_map.update(dict.fromkeys(part, filename))
            index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
            files["model.safetensors.index.json"] = json.dumps(index).encode()
    return Repo(files=files, **options)


ROUTE_INFO = re.compile(r"/api/models/(?P<repo>[^/]+/[^/]+)/revision/(?P<revision>[^?]+)")
ROUTE_FILE = re.compile(r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<file>[^?]+)")


class StandInHub:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                hub.answer(self, body=True)

            def do_HEAD(self) -> None:
                hub.answer(self, body=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *args: None  # a client that gave up waiting
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _error(self, handler: BaseHTTPRequestHandler, status: int, code: str) -> None:
        handler.send_response(status)
        handler.send_header("X-Error-Code", code)
        handler.send_header("Content-Type", "application/json")
        body = json.dumps({"error": code}).encode()
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command == "GET":
            handler.wfile.write(body)

    def answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        self.requests.append((handler.command, handler.path, dict(handler.headers)))
        path = handler.path.split("?")[0]
        match = ROUTE_INFO.fullmatch(path) or ROUTE_FILE.fullmatch(path)
        repo = self.repos.get(match["repo"]) if match else None
        if repo is None:
            return self._error(handler, 404, "RepoNotFound")
        time.sleep(repo.delay)
        authorization = handler.headers.get("Authorization", "")
        authorised = authorization.removeprefix("Bearer ") in repo.tokens
        if repo.private and not authorised:
            return self._error(handler, 401, "RepoNotFound")  # as the Hub: no hint it exists
        if match["revision"] not in ("main", repo.sha):
            return self._error(handler, 404, "RevisionNotFound")
        if "file" not in match.groupdict():
            info = {
                "id": match["repo"],
                "sha": repo.sha,
                "private": repo.private,
                "gated": "auto" if repo.gated else False,
                "siblings": [
                    {"rfilename": name, "size": len(data)} for name, data in repo.files.items()
                ],
            }
            data = json.dumps(info).encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return None
        if repo.gated and not authorised:
            return self._error(handler, 403, "GatedRepo")
        data = repo.files.get(match["file"])
        if data is None:
            return self._error(handler, 404, "EntryNotFound")
        status = 200
        start, end = 0, len(data) - 1
        ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", handler.headers.get("Range", ""))
        if ranged and handler.command == "GET":
            status = 206
            start = int(ranged[1])
            end = min(int(ranged[2]) if ranged[2] else end, len(data) - 1)
        chunk = data[start : end + 1]
        handler.send_response(status)
        handler.send_header("X-Repo-Commit", repo.sha)
        handler.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        handler.send_header("Content-Length", str(len(chunk)))
        if status == 206:
            handler.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        handler.end_headers()
        if body:
            handler.wfile.write(chunk)
        return None
