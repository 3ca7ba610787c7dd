"""Measurement of the product: the ``mathrag bench`` suites, their report and the README's headline table.

``bench.framework`` (how a suite registers), ``bench.run``, ``bench.report``,
``bench.readme``, and one module per suite: ``rag_suite``, ``scratch_suite``,
``scale_suite``, ``graph_suite``, ``reliability_suite``, ``finetune_suite``.
This package imports the product; nothing in the product imports it.
"""
