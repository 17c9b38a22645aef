"""Models by their Hugging Face id: the config.json and the safetensors headers, read through
`huggingface_hub` (the official client) from the Hub that HF_ENDPOINT names.

One import makes at most a handful of requests, each bounded by HUB_TIMEOUT_SECONDS, and the
whole of it runs in a worker thread that the request waits on for a bounded time, so a stalled
Hub never holds a web worker. The safetensors headers (read with range requests: no weights are
downloaded) give the exact parameter count and the stored dtype of every tensor.

What is kept (calculator/domain/caching.py): which commit a revision names, briefly and per token (a
private or gated repo's answer is never shared with a caller who lacks access), and what the
commit holds, for good. Errors are `HubError`s with a message for the user; nothing else leaves.

A user's own token is encrypted with Fernet (`cryptography`), under a key derived from
SECRET_KEY with HKDF-SHA256: changing SECRET_KEY makes the stored tokens unreadable (users then
enter theirs again). It is never shown, logged, kept in a permalink or exported.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.core.cache import caches

# huggingface_hub reads these once, at import: bounded requests (the calls that take no timeout
# argument use them), no telemetry or progress bars, and its file cache under var/.
_TIMEOUT = str(max(1, math.ceil(settings.HUB_TIMEOUT_SECONDS)))
os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", _TIMEOUT)
os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", _TIMEOUT)
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
os.environ.setdefault("HF_HOME", str(settings.BASE_DIR / "var" / "huggingface"))

import httpx2  # noqa: E402  (huggingface_hub's HTTP client)
from cryptography.fernet import Fernet, InvalidToken  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: E402
from huggingface_hub import HfApi, hf_hub_url  # noqa: E402
from huggingface_hub.errors import (  # noqa: E402
    DisabledRepoError,
    GatedRepoError,
    HfHubHTTPError,
    NotASafetensorsRepoError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    SafetensorsParsingError,
)
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status  # noqa: E402

from calculator.domain import caching  # noqa: E402
from calculator.models import HubToken  # noqa: E402

logger = logging.getLogger(__name__)

# The same bound as an uploaded config.json (calculator/domain/services.py parse_config_json)
CONFIG_MAX_BYTES = 1_048_576
# How long a branch or tag is taken to name the same commit (a commit sha names it for good)
REVISION_CACHE_SECONDS = 300
REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9._-]{1,96}")
REVISION = re.compile(r"[A-Za-z0-9._/-]{1,200}")
COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
# transformers' class names of the models that generate text
CAUSAL_LM = re.compile(r"(ForCausalLM|LMHeadModel|ForConditionalGeneration)$")

# Tensors that hold quantisation state, not parameters: GPTQ/AWQ zeros, scales and act-order
# index, FP8 scales, bitsandbytes absmax and quantisation maps, MXFP4 block scales.
QUANT_STATE_SUFFIXES = (
    ".qzeros",
    ".scales",
    ".g_idx",
    ".weight_scale",
    ".weight_scale_inv",
    ".input_scale",
    ".weight_zero_point",
    ".weight_global_scale",
    ".input_global_scale",
    ".weight_shape",
    ".k_scale",
    ".v_scale",
    ".absmax",
    ".quant_map",
    ".nested_absmax",
    ".nested_quant_map",
    ".SCB",
    ".weight_format",
    "_scales",
)
# Bytes per element of the safetensors dtypes
DTYPE_BYTES = {
    "F64": 8,
    "I64": 8,
    "U64": 8,
    "F32": 4,
    "I32": 4,
    "U32": 4,
    "F16": 2,
    "BF16": 2,
    "I16": 2,
    "U16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E8M0": 1,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}
FLOAT_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


class HubError(Exception):
    """An import that failed, with what to tell the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class HubModel:
    repo_id: str
    revision: str  # as asked: a branch, a tag or a commit
    sha: str  # the commit it named
    config: dict[str, Any]
    config_text: str  # config.json as the Hub served it
    gated: bool
    private: bool
    # From the safetensors headers; None when the repo has no safetensors files
    safetensors: dict[str, Any] | None
    # The contract's weight_dtype for what the checkpoint stores (None: the config's own dtype)
    weight_dtype: str | None

    def evidence(self) -> dict[str, Any]:
        """What a saved estimate or profile keeps beside the config.json."""
        return {
            "repo_id": self.repo_id,
            "revision": self.revision,
            "sha": self.sha,
            "safetensors": self.safetensors,
            "weight_dtype": self.weight_dtype,
        }


def enabled() -> bool:
    return settings.HUB_IMPORT


# --- Tokens -------------------------------------------------------------------------------


def _fernet() -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"llmtools hub token").derive(
        settings.SECRET_KEY.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def token_encrypt(token: str) -> str:
    return _fernet().encrypt(token.encode()).decode()


def token_for(user: Any) -> str | None:
    """The token an import reads with: the user's own, else the server's HF_TOKEN, else none."""
    if user is not None and getattr(user, "is_authenticated", False):
        stored = HubToken.objects.filter(user=user).values_list("encrypted", flat=True).first()
        if stored:
            try:
                return _fernet().decrypt(stored.encode()).decode()
            except InvalidToken:
                logger.warning(
                    "A stored Hugging Face token could not be decrypted (user %s)", user.pk
                )
    return settings.HF_TOKEN or None


def _fingerprint(token: str | None) -> str:
    """Who reads, for the keys of what is kept: never the token itself."""
    if not token:
        return "anonymous"
    return hashlib.sha256(f"{settings.SECRET_KEY}:{token}".encode()).hexdigest()[:32]


# --- Safetensors facts --------------------------------------------------------------------


def _pack_factor(name: str, dtype: str, quantization: dict[str, Any]) -> int:
    """How many parameters one stored element holds (packed integer formats)."""
    method = str(quantization.get("quant_method", "")).lower()
    bits = quantization.get("bits") or quantization.get("num_bits") or 4
    if dtype == "I32" and (name.endswith(".qweight") or name.endswith(".weight_packed")):
        return 32 // int(bits) if isinstance(bits, int) and 0 < bits <= 32 else 8
    if dtype == "U8" and name.endswith("_blocks"):
        return 2  # MXFP4: two 4-bit values a byte
    if dtype == "U8" and method == "bitsandbytes" and quantization.get("load_in_4bit"):
        return 2  # bitsandbytes 4-bit: two codes a byte
    return 1


def safetensors_facts(
    tensors: Mapping[str, tuple[str, list[int], int]], quantization: dict[str, Any]
) -> dict[str, Any]:
    """Parameter count and storage of a checkpoint from its headers' tensors, given as
    name -> (safetensors dtype, shape, bytes stored)."""
    parameters = 0
    elements_by_dtype: dict[str, int] = {}
    parameters_by_dtype: dict[str, int] = {}
    stored_bytes = 0
    for name, (dtype, shape, size) in tensors.items():
        elements = math.prod(shape)
        stored_bytes += size
        elements_by_dtype[dtype] = elements_by_dtype.get(dtype, 0) + elements
        if name.endswith(QUANT_STATE_SUFFIXES) or ".quant_state." in name:
            continue
        count = elements * _pack_factor(name, dtype, quantization)
        parameters += count
        parameters_by_dtype[dtype] = parameters_by_dtype.get(dtype, 0) + count
    return {
        "parameters": parameters,
        "parameters_by_dtype": dict(sorted(parameters_by_dtype.items())),
        "elements_by_dtype": dict(sorted(elements_by_dtype.items())),
        "stored_bytes": stored_bytes,
        "num_tensors": len(tensors),
    }


def weight_dtype_for(config: dict[str, Any], facts: dict[str, Any] | None) -> str | None:
    """The contract's weight_dtype for what the checkpoint stores, or None for the config's own
    dtype (a plain 16/32-bit checkpoint whose config names it)."""
    quantization = config.get("quantization_config")
    if not isinstance(quantization, dict):
        text_config = config.get("text_config")
        quantization = (
            text_config.get("quantization_config") if isinstance(text_config, dict) else None
        )
    if isinstance(quantization, dict):
        method = str(quantization.get("quant_method", "")).lower()
        bits = quantization.get("bits", 4)
        if method == "gptq" and bits == 4:
            return "gptq_int4"
        if method == "awq" and bits == 4:
            return "awq_int4"
        if method == "bitsandbytes":
            if quantization.get("load_in_8bit"):
                return "int8"
            if quantization.get("bnb_4bit_quant_type") == "fp4":
                return "fp4"
            return "nf4" if quantization.get("bnb_4bit_use_double_quant") else "nf4_no_dq"
        if method in ("fp8", "fbgemm_fp8"):
            return "float8"
        if method == "mxfp4":
            # 4-bit values and an 8-bit scale per 32: 4.25 bits, as int4 with group-128 scales
            return "int4"
    if facts is None:
        return None
    by_dtype = facts["parameters_by_dtype"]
    if not by_dtype:
        return None
    dominant = max(by_dtype, key=by_dtype.get)
    if dominant.startswith("F8"):
        return "float8"
    if "dtype" in config or "torch_dtype" in config:
        return None
    return FLOAT_DTYPES.get(dominant)


# --- Fetching -----------------------------------------------------------------------------


def _config_read(api: HfApi, repo_id: str, sha: str, token: str | None) -> str:
    """config.json's text, at most CONFIG_MAX_BYTES of it read (the Hub's own URL and headers)."""
    url = hf_hub_url(repo_id, "config.json", revision=sha, endpoint=api.endpoint)
    headers = build_hf_headers(token=token or False, library_name="llmtools")
    timeout = settings.HUB_TIMEOUT_SECONDS
    with get_session().stream("GET", url, headers=headers, timeout=timeout) as response:
        if response.status_code >= 400:
            response.read()
            hf_raise_for_status(response)
        body = bytearray()
        for chunk in response.iter_bytes():
            body.extend(chunk)
            if len(body) > CONFIG_MAX_BYTES:
                raise HubError(f"{repo_id}'s config.json is larger than 1 MB.")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise HubError(f"{repo_id}'s config.json is not UTF-8 text.") from None


def _config_parse(repo_id: str, text: str) -> dict[str, Any]:
    try:
        config = json.loads(text)
    except ValueError:
        raise HubError(f"{repo_id}'s config.json is not valid JSON.") from None
    if not isinstance(config, dict):
        raise HubError(f"{repo_id}'s config.json is not a JSON object.")
    architectures = config.get("architectures")
    generates = isinstance(architectures, list) and any(
        isinstance(name, str) and CAUSAL_LM.search(name) for name in architectures
    )
    if isinstance(architectures, list) and architectures and not generates:
        names = ", ".join(str(name)[:100] for name in architectures[:3])
        raise HubError(
            f"{repo_id} is not a causal language model (its config.json names {names}); "
            "the calculator sizes models that generate text."
        )
    return config


def _safetensors_read(
    api: HfApi, repo_id: str, sha: str, token: str | None, config: dict[str, Any]
) -> dict[str, Any] | None:
    try:
        metadata = api.get_safetensors_metadata(
            repo_id, revision=sha, token=token or False, timeout=settings.HUB_TIMEOUT_SECONDS
        )
    except NotASafetensorsRepoError:
        return None
    tensors = {
        name: (info.dtype, list(info.shape), info.data_offsets[1] - info.data_offsets[0])
        for file in metadata.files_metadata.values()
        for name, info in file.tensors.items()
    }
    quantization = config.get("quantization_config")
    facts = safetensors_facts(tensors, quantization if isinstance(quantization, dict) else {})
    facts["num_files"] = len(metadata.files_metadata)
    facts["sharded"] = metadata.sharded
    return facts


def _fetch(repo_id: str, revision: str, token: str | None, who: str) -> HubModel:
    api = HfApi(endpoint=settings.HF_ENDPOINT, token=token or False, library_name="llmtools")
    fingerprint = _fingerprint(token)
    seen = caching.hub_revision_get(repo_id, revision, fingerprint)
    if seen is None:
        _rate_check(who)
        info = api.model_info(
            repo_id, revision=revision, timeout=settings.HUB_TIMEOUT_SECONDS, files_metadata=True
        )
        if not info.sha:
            raise HubError(f"The Hub did not say which commit {revision!r} of {repo_id} is.")
        # config.json's size: -1 when the listing lacks it, None when the Hub gave no sizes
        siblings = {sibling.rfilename: sibling.size for sibling in info.siblings or []}
        seen = {
            "sha": info.sha,
            "gated": bool(info.gated),
            "private": bool(info.private),
            "config_size": siblings.get("config.json", -1) if info.siblings is not None else None,
        }
        timeout = None if COMMIT_SHA.fullmatch(revision) else REVISION_CACHE_SECONDS
        caching.hub_revision_set(repo_id, revision, fingerprint, seen, timeout)
    scope = fingerprint if seen["gated"] or seen["private"] else "public"
    kept = caching.hub_model_get(repo_id, seen["sha"], scope)
    if kept is not None:
        return HubModel(**{**kept, "revision": revision})
    if seen["config_size"] == -1:
        raise HubError(
            f"{repo_id} has no config.json at {revision!r}: it is not a transformers model "
            "(paste a config.json or type the architecture instead)."
        )
    if (seen["config_size"] or 0) > CONFIG_MAX_BYTES:
        raise HubError(f"{repo_id}'s config.json is larger than 1 MB.")
    _rate_check(who)
    text = _config_read(api, repo_id, seen["sha"], token)
    config = _config_parse(repo_id, text)
    facts = _safetensors_read(api, repo_id, seen["sha"], token, config)
    model = HubModel(
        repo_id=repo_id,
        revision=revision,
        sha=seen["sha"],
        config=config,
        config_text=text,
        gated=seen["gated"],
        private=seen["private"],
        safetensors=facts,
        weight_dtype=weight_dtype_for(config, facts),
    )
    caching.hub_model_set(repo_id, seen["sha"], scope, asdict(model))
    return model


def _message(error: Exception, repo_id: str, revision: str, token: str | None) -> str:
    """What to tell the user about a failed import (never the token, never a traceback)."""
    if isinstance(error, GatedRepoError):
        if token:
            return (
                f"{repo_id} is gated and the token used has no access to it: accept its terms "
                f"on its page ({settings.HF_ENDPOINT}/{repo_id}) with the account the token "
                "belongs to."
            )
        return (
            f"{repo_id} is gated: accept its terms on its page "
            f"({settings.HF_ENDPOINT}/{repo_id}), then add your Hugging Face token under "
            "Account → Hugging Face token (or ask the administrator to set HF_TOKEN)."
        )
    if isinstance(error, RevisionNotFoundError):
        return f"{repo_id} has no revision {revision!r} (a branch, tag or commit)."
    if isinstance(error, RemoteEntryNotFoundError):
        return f"{repo_id} has no config.json at {revision!r}."
    if isinstance(error, DisabledRepoError):
        return f"{repo_id} has been disabled on the Hub."
    if isinstance(error, RepositoryNotFoundError):
        private = "" if token else " If it is private, add a Hugging Face token with access."
        return f"No model {repo_id} on the Hub ({settings.HF_ENDPOINT}).{private}"
    if isinstance(error, httpx2.TimeoutException | FutureTimeout):
        return f"The Hub ({settings.HF_ENDPOINT}) did not answer in time; try again later."
    if isinstance(error, SafetensorsParsingError):
        return f"{repo_id}'s safetensors headers could not be read."
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else "?"
        if status == 429:
            return "The Hub is limiting our requests; try again in a minute."
        return f"The Hub answered {status} for {repo_id}; try again later."
    if isinstance(error, httpx2.HTTPError | OfflineModeIsEnabled | OSError):
        return f"The Hub ({settings.HF_ENDPOINT}) cannot be reached."
    return f"{repo_id} could not be imported from the Hub."


_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="hub-import")


def hub_model(*, repo_id: Any, revision: Any = None, user: Any = None, who: str = "") -> HubModel:
    """The config.json and safetensors facts of `repo_id` at `revision` (default "main").

    Raises HubError with a message for the user; waits at most about three Hub timeouts."""
    if not enabled():
        raise HubError("Import from the Hugging Face Hub is turned off on this server.")
    if not isinstance(repo_id, str) or not REPO_ID.fullmatch(repo_id.strip()):
        raise HubError("A Hugging Face model id such as Qwen/Qwen3-8B (organisation/name).")
    repo_id = repo_id.strip()
    revision = "main" if revision in (None, "") else revision
    if not isinstance(revision, str) or not REVISION.fullmatch(revision) or ".." in revision:
        raise HubError("A revision is a branch, a tag or a commit sha, such as main.")
    token = token_for(user)
    future = _pool.submit(_fetch, repo_id, revision, token, who or "anonymous")
    try:
        return future.result(timeout=3 * settings.HUB_TIMEOUT_SECONDS + 1)
    except HubError:
        raise
    except Exception as error:  # every failure becomes a message; none reaches a 500
        if not isinstance(error, HfHubHTTPError | httpx2.HTTPError | FutureTimeout):
            logger.warning("Hub import of %s failed: %s", repo_id, type(error).__name__)
        raise HubError(_message(error, repo_id, revision, token)) from None


# --- Rate limit ---------------------------------------------------------------------------

_rate_lock = threading.Lock()


def _rate_check(who: str) -> None:
    """At most HUB_IMPORTS_PER_MINUTE imports that reach the Hub, per caller and minute."""
    limit = settings.HUB_IMPORTS_PER_MINUTE
    if limit <= 0:
        return
    key = f"hub-rate:{who}:{int(time.time() // 60)}"
    cache = caches["default"]
    with _rate_lock:
        cache.add(key, 0, timeout=120)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=120)
            count = 1
    if count > limit:
        raise HubError(
            f"More than {limit} imports from the Hub in a minute; try again in a minute "
            "(models already imported answer at once)."
        )
