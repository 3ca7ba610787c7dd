"""A language model's core, written from first principles.

A byte-level BPE tokenizer, attention and a GPT (Llama-family) model that load
and reproduce a real pretrained model. Read as teaching material: each module
writes out the math it implements. This package imports nothing of the project
(only torch, numpy and gguf), so it can be read and reused on its own.
"""
