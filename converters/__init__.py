"""Converters: one folder per target family (``gguf/``, ``executorch/``, ``onnx/``), each holding its data
tables, its converter, its runtime and (where it has one) its native adapter, and exposing one ``FAMILY``
object (``edge.core.family.Family``) from its ``__init__``, registered in ``edge.core.family.FAMILIES``.
A family's ``__init__`` imports only its tables, so listing formats never imports torch or llama.cpp."""
