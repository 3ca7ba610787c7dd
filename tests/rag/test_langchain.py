"""LangChain's standard test suites against our retriever and vector store, plus their use on the notes."""

import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests import RetrieversIntegrationTests, VectorStoreIntegrationTests

from rag.langchain import MiniLMEmbeddings, NotesRetriever, NotesVectorStore


class TestNotesVectorStore(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self):
        return NotesVectorStore(embedding=self.get_embeddings())


@pytest.fixture(scope="class")
def shared_retriever(request, small_retriever):
    request.cls.shared = small_retriever


@pytest.mark.usefixtures("shared_retriever")
class TestNotesRetriever(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self):
        return NotesRetriever

    @property
    def retriever_constructor_params(self):
        return {"retriever": self.shared}

    @property
    def retriever_query_example(self):
        return "What is the derivative of tanh?"


def test_retriever_documents_carry_the_note_metadata(small_retriever):
    docs = NotesRetriever(retriever=small_retriever, k=2, mode="dense").invoke("bias correction in Adam")
    assert len(docs) == 2 and docs[0].metadata["source"] == "corpus/optimization/adam.md"
    assert docs[0].id == docs[0].metadata["chunk_id"] and docs[0].metadata["heading"].startswith("Adam")


def test_vector_store_over_the_notes_index(small_retriever):
    store = NotesVectorStore.from_index(small_retriever.index)
    docs = store.similarity_search("What is the derivative of tanh?", k=3)
    assert docs[0].metadata["source"] == "corpus/neural_networks/activation_functions.md"
    assert store.get_by_ids([docs[0].id])[0].page_content == docs[0].page_content
    # The same ranking as the project's own dense search: same vectors, same model.
    own = small_retriever.search("What is the derivative of tanh?", k=3, mode="dense")
    assert [d.id for d in docs] == [h.chunk_id for h in own]


def test_minilm_embeddings_are_normalized():
    vec = MiniLMEmbeddings().embed_query("eigenvalues")
    assert len(vec) == 384 and abs(sum(v * v for v in vec) - 1) < 1e-4


def test_upsert_in_one_call_keeps_the_last(small_retriever):
    store = NotesVectorStore(MiniLMEmbeddings())
    store.add_texts(["first", "second"], ids=["a", "a"])
    assert store.get_by_ids(["a"]) == [Document(page_content="second", metadata={}, id="a")]
