"""Fine-tuning on the notes.

Grounded question-answer data synthesised from the corpus, LoRA supervised
fine-tuning of the answering model, embedding fine-tuning, and before/after
evaluation. This package may import ``rag``.
"""
