"""The embedded models are installed, offline, and load for real."""

import numpy as np
import pytest

from rag.models import embedding_model_dir, generator_gguf_path


def test_embedder_loads_offline_and_embeds():
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(embedding_model_dir()), device="cpu")
    vecs = model.encode(
        ["The gradient points uphill.", "The gradient is the direction of steepest ascent.", "Bananas are yellow."],
        normalize_embeddings=True,
    )
    assert vecs.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # Paraphrases are closer than an unrelated sentence.
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.3


def test_generator_gguf_is_smollm2():
    gguf = pytest.importorskip("gguf")
    reader = gguf.GGUFReader(str(generator_gguf_path()))
    fields = reader.fields
    arch = bytes(fields["general.architecture"].parts[-1]).decode()
    assert arch == "llama"
    assert int(fields["llama.block_count"].parts[-1][0]) == 30
    assert int(fields["llama.embedding_length"].parts[-1][0]) == 576
    assert len(fields["tokenizer.ggml.tokens"].data) == 49152
