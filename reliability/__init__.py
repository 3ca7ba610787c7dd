"""What users and machines do to the product, done on purpose: faults, fuzzing, load and security probes.

``faults`` (kill -9 mid-publish, damaged files, a read-only home, a full disk),
``fuzz`` (nasty input to the chat, the tokenizer and the note parser), ``load_test``
(many clients against a running app), ``security`` (unsafe loading in the source,
files outside the app, outbound connections). The tests run their quick forms;
``mathrag bench --suite reliability`` runs them all. This package imports the
product; nothing in the product imports it.
"""
