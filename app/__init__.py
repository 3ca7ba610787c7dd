"""The Gradio chat over the notes.

The user-facing app: chat with cited answers, browse the notes, and open the
layers underneath (``attention_maps``: the heatmaps of the from-scratch GPT). It may import ``rag``,
``graphrag`` and ``from_scratch``; only the ``mathrag`` command imports it.
"""
