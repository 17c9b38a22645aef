"""expert_parallel through POST /api/v1/calculate: the figures and the per-field 400s."""

from __future__ import annotations

import pytest

URL = "/api/v1/calculate"
MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
LLAMA = "meta-llama/Llama-3.1-8B"
EP_8 = {"num_gpus": 8, "tensor_parallel": 1, "pipeline_parallel": 1}


def post(client, payload):
    return client.post(URL, payload, format="json")


@pytest.mark.django_db
def test_ep_8_holds_one_expert_in_eight(client_for, catalog):
    body = post(
        client_for(None),
        {"model": {"catalog": MIXTRAL}, "sequence_length": 1, **EP_8, "expert_parallel": 8},
    ).json()
    total = body["parameters"]["total"]
    # Mixtral-8x7B's routed experts: 32 layers x 8 experts x 3 matrices of 4096 x 14336, of which
    # each GPU keeps one expert in eight; the rest (attention, embeddings, norms) is replicated
    routed = 32 * 8 * 3 * 4096 * 14336
    assert body["breakdown"]["weights"] == 2 * (total - routed * 7 // 8)
    assert body["inputs"]["expert_parallel"] == 8


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"model": {"catalog": LLAMA}, "num_gpus": 2, "expert_parallel": 2}, "dense"),
        ({"model": {"catalog": MIXTRAL}, **EP_8, "expert_parallel": 4}, "use 8, or 1"),
        ({"model": {"catalog": MIXTRAL}, **EP_8, "expert_parallel": 0}, "1"),
        ({"model": {"catalog": MIXTRAL}, **EP_8, "expert_parallel": "eight"}, ""),
        ({"model": {"catalog": MIXTRAL}, **EP_8, "expert_parallel": 10**9}, ""),
        (
            {"model": {"catalog": MIXTRAL}, **EP_8, "expert_parallel": 3, "mode": "training"},
            "context_parallel x data_parallel = 1 x 8 = 8",
        ),
    ],
)
def test_bad_expert_parallel_is_a_400_naming_it(client_for, catalog, payload, message):
    response = post(client_for(None), payload)
    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["expert_parallel"]
    assert message in " ".join(body["expert_parallel"])


# --- training: expert parallelism (Megatron-Core) and context parallelism -----------------------


@pytest.mark.django_db
def test_training_ep_and_cp_through_the_api(client_for, catalog):
    # Mixtral-8x7B, 8 GPUs: tp 1 x cp 4 x dp 2, ep 8 (a divisor of cp x dp = 8, Megatron's rule)
    body = post(
        client_for(None),
        {
            "model": {"catalog": MIXTRAL},
            "mode": "training",
            "sequence_length": 4096,
            **EP_8,
            "context_parallel": 4,
            "expert_parallel": 8,
            "gradient_checkpointing": True,
            "gpu": "h100-sxm",
        },
    ).json()
    assert body["inputs"]["context_parallel"] == 4
    assert body["inputs"]["expert_parallel"] == 8
    total = body["parameters"]["total"]
    # one expert in eight per GPU, the rest replicated (over cp too), bf16: as in inference
    routed = 32 * 8 * 3 * 4096 * 14336
    assert body["breakdown"]["weights"] == 2 * (total - routed * 7 // 8)
    configuration = body["answer"]["configuration"]
    assert (configuration["context_parallel"], configuration["data_parallel"]) == (4, 2)
    assert configuration["expert_parallel"] == 8
    # the search keeps cp 4 and ep 8 in the layouts it tries
    for fit in body["fit"]:
        if fit["configuration"] is not None:
            assert fit["configuration"]["context_parallel"] == 4
            assert fit["configuration"]["expert_parallel"] == 8


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "message"),
    [
        # 4,100 tokens are no multiple of 2 x cp = 8
        (
            {"mode": "training", "sequence_length": 4100, "num_gpus": 4, "context_parallel": 4},
            "sequence_length 4,096 or 4,104",
        ),
        ({"num_gpus": 2, "context_parallel": 2}, "modelled for training"),
        ({"mode": "training", "context_parallel": "four"}, ""),
    ],
)
def test_bad_context_parallel_is_a_400_naming_it(client_for, catalog, payload, message):
    response = post(client_for(None), {"model": {"catalog": LLAMA}, **payload})
    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["context_parallel"]
    assert message in " ".join(body["context_parallel"])
