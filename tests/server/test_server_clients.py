"""LangChain's OpenAIEmbeddings and LlamaIndex's OpenAIEmbedding pointed at `grace-rag serve`, unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DOCS
from serve_support import ServerProcess, cl100k_offline, stopped_cleanly

KEY = "client-key"


@pytest.fixture(scope="module")
def server(served_index, tmp_path_factory):
    proc = ServerProcess(["--index", str(served_index), "--api-key", KEY, "--device", "cpu"], tmp_path_factory.mktemp("home"))
    yield proc
    assert stopped_cleanly(proc), proc.output()


def test_langchain_openai_embeddings_with_its_defaults(server, index_encoder, monkeypatch):
    from langchain_openai import OpenAIEmbeddings

    cl100k_offline(monkeypatch)  # LangChain tokenises with tiktoken and sends token ids, as it does with OpenAI
    client = OpenAIEmbeddings(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    texts = list(DOCS.values())
    np.testing.assert_allclose(client.embed_documents(texts), index_encoder.encode(texts).vectors, atol=1e-5)
    np.testing.assert_allclose(client.embed_query(DOCS["bees"]), index_encoder.encode([DOCS["bees"]]).vectors[0], atol=1e-5)


async def test_langchain_openai_embeddings_sending_text_async(server, index_encoder):
    from langchain_openai import OpenAIEmbeddings

    client = OpenAIEmbeddings(base_url=f"{server.url}/v1", api_key=KEY, model="grace", check_embedding_ctx_length=False, max_retries=0)
    vectors = await client.aembed_documents(list(DOCS.values()))
    np.testing.assert_allclose(vectors, index_encoder.encode(list(DOCS.values())).vectors, atol=1e-5)


def test_llama_index_openai_embedding(server, index_encoder):
    from llama_index.embeddings.openai import OpenAIEmbedding

    client = OpenAIEmbedding(api_base=f"{server.url}/v1", api_key=KEY, model_name="grace", max_retries=0)
    texts = list(DOCS.values())
    np.testing.assert_allclose(client.get_text_embedding_batch(texts), index_encoder.encode(texts).vectors, atol=1e-5)
    np.testing.assert_allclose(client.get_query_embedding(DOCS["volcano"]), index_encoder.encode([DOCS["volcano"]]).vectors[0], atol=1e-5)


def test_the_openai_sdk_shows_the_servers_error_message(server):
    import openai

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="missing or wrong API key"):
        client.embeddings.create(input="t", model="grace")
