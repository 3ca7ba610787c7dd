"""The Gradio chat over the notes.

The user-facing app: chat with cited answers, browse the notes, and open the
layers underneath. It may import ``rag`` and ``graphrag``; nothing imports it.
"""
