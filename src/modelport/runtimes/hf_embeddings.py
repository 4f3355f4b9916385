"""Hugging Face embedding models: sentence-transformers folders and plain
feature-extraction encoders (a ``config.json`` whose architecture does not generate text,
safetensors weights and a tokenizer).

One version answers texts (input ``text``, BYTES ``[-1]``) with one vector each
(``embedding``, FP32 ``[-1, dim]``) and how many tokens each text took (``tokens``, INT64
``[-1]``, for usage counts). Loading reads the safetensors weights with transformers'
``AutoModel`` (local files only, never remote code); the pooling, normalization and length
limit the folder's sentence-transformers files describe are applied here, so the vectors
match ``SentenceTransformer(folder).encode`` without running that package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelport.errors import InvalidInputError
from modelport.runtimes.base import InspectedArtifact, Tensors
from modelport.runtimes.hf_folder import (
    check_frameworks,
    check_no_custom_code,
    check_safe_weights,
    has_tokenizer,
    is_generative,
    read_config,
)
from modelport.runtimes.plugins import InspectOptions, LoadOptions
from modelport.runtimes.sentence_config import (
    SentenceConfig,
    read_sentence_config,
    transformer_dir_of,
)
from modelport.runtimes.signatures import signature_for_upload
from modelport.runtimes.torch_import import import_torch
from modelport.types import Datatype, Signature, TensorSpec

FORMAT = "hf-embedding"
WHAT = "a Hugging Face embedding model"
CHUNK_TEXTS = 32
"""Texts per forward pass: a batch is sorted by length and run in chunks of similar
lengths (as ``encode`` does), so one long text does not pad every other one, and memory
stays bounded whatever the batch size."""


def embedding_signature(dimensions: int) -> Signature:
    return Signature(
        inputs=[TensorSpec(name="text", datatype=Datatype.BYTES, shape=[-1])],
        outputs=[
            TensorSpec(name="embedding", datatype=Datatype.FP32, shape=[-1, dimensions]),
            TensorSpec(name="tokens", datatype=Datatype.INT64, shape=[-1]),
        ],
    )


class HFEmbeddingsRuntime:
    """Embedding models from Hugging Face folders, served with torch on the CPU."""

    name = "huggingface-embeddings"
    folder_formats: tuple[str, ...] = (FORMAT,)

    def detect_folder(self, folder: Path) -> str | None:
        # A folder that is clearly meant as one (modules.json, or a config with a
        # tokenizer) is claimed even when broken: inspect then says precisely what is wrong.
        try:
            transformer_dir = transformer_dir_of(folder)
        except InvalidInputError:
            return FORMAT
        if not (transformer_dir / "config.json").is_file() or not has_tokenizer(transformer_dir):
            return None
        try:
            config = read_config(transformer_dir)
        except InvalidInputError:
            return FORMAT
        return None if is_generative(config) else FORMAT

    def inspect(self, path: Path, fmt: str, options: InspectOptions) -> InspectedArtifact:
        check_frameworks(WHAT)
        import_torch()  # before transformers imports it
        import transformers

        model = EmbeddingModel(path, embedding_signature(1), threads=None)
        try:
            probe = model.predict({"text": np.array(["inspection"], dtype=object)}, frozenset())
        finally:
            model.unload()
        dimensions = int(probe["embedding"].shape[1])
        params: dict[str, Any] = {
            "dimensions": dimensions,
            "normalized": model.pipeline.normalize,
            "pooling": list(model.pipeline.pooling),
            "max_seq_length": model.max_length,
            "model_type": model.model_type,
        }
        if model.pipeline.prompt:
            params["prompt"] = model.pipeline.prompt
        return InspectedArtifact(
            format=FORMAT,
            framework="transformers",
            framework_version=transformers.__version__,
            signature=signature_for_upload(options.signature, embedding_signature(dimensions)),
            params=params,
        )

    def load(
        self, path: Path, fmt: str, signature: Signature, options: LoadOptions
    ) -> EmbeddingModel:
        return EmbeddingModel(path, signature, options.threads)


def checked_pipeline(folder: Path) -> SentenceConfig:
    """Every refusal a folder can earn, before any weights are read."""
    check_frameworks(WHAT)
    pipeline = read_sentence_config(folder)
    config = read_config(pipeline.transformer_dir)
    check_no_custom_code(pipeline.transformer_dir, config)
    check_safe_weights(pipeline.transformer_dir)
    return pipeline


class EmbeddingModel:
    """Tokenizer, encoder and pooling of one folder, on the CPU in float32."""

    finite_inputs_only = False

    def __init__(self, folder: Path, signature: Signature, threads: int | None) -> None:
        """``threads``: the cores torch may use (None leaves torch's setting alone: an
        upload's inspection must not change what loaded models use)."""
        self.default_outputs = ["embedding", "tokens"]
        self.pipeline = checked_pipeline(folder)
        torch = import_torch()
        self.signature = signature
        self.dimensions = max(0, signature.outputs[0].shape[-1])
        if threads is not None:
            torch.set_num_threads(max(1, threads))
        self.tokenizer, self.model = _load(self.pipeline.transformer_dir)
        self.model_type = str(getattr(self.model.config, "model_type", ""))
        self.max_length = _model_max_length(self.tokenizer, self.model.config)
        if self.pipeline.max_seq_length is not None:
            # Never more tokens than the model has positions, whatever the folder claims.
            positions = getattr(self.model.config, "max_position_embeddings", None)
            self.max_length = self.pipeline.max_seq_length
            if isinstance(positions, int) and 0 < positions < self.max_length:
                self.max_length = positions

    def predict(self, inputs: Tensors, outputs: frozenset[str]) -> Tensors:
        texts = [self._prepared(item) for item in inputs["text"].reshape(-1).tolist()]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        dimensions = None
        vectors: list[Any] = [None] * len(texts)
        tokens = np.zeros(len(texts), dtype=np.int64)
        for start in range(0, len(order), CHUNK_TEXTS):
            chunk = order[start : start + CHUNK_TEXTS]
            embedded, counts = self._embed([texts[i] for i in chunk])
            dimensions = embedded.shape[1]
            for row, index in enumerate(chunk):
                vectors[index] = embedded[row]
            tokens[chunk] = counts
        if dimensions is None:  # no texts at all
            return {"embedding": np.zeros((0, self.dimensions), np.float32), "tokens": tokens}
        return {"embedding": np.stack(vectors), "tokens": tokens}

    def _prepared(self, item: object) -> str:
        if isinstance(item, bytes):
            try:
                item = item.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInputError("input 'text' must be UTF-8 text") from None
        if not isinstance(item, str):
            raise InvalidInputError("input 'text' must hold strings")
        text = self.pipeline.prompt + item
        return text.lower() if self.pipeline.lowercase else text

    def _embed(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        import torch

        encoded = self.tokenizer(
            texts,
            padding=True,
            truncation="longest_first",
            max_length=self.max_length,
            return_tensors="pt",
        )
        mask = encoded["attention_mask"]
        with torch.inference_mode():
            hidden = self.model(**encoded).last_hidden_state
            pooled = pool(hidden, mask, self.pipeline.pooling)
            if self.pipeline.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
        return pooled.float().numpy(), mask.sum(dim=1).numpy()

    def unload(self) -> None:
        self.model = None


def _load(folder: Path) -> tuple[Any, Any]:
    """The tokenizer and encoder of ``folder``: local files, safetensors, no remote code."""
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    local = {"local_files_only": True, "trust_remote_code": False}
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, **local)
        model = transformers.AutoModel.from_pretrained(
            folder, use_safetensors=True, dtype=torch.float32, **local
        )
    except Exception as exc:  # transformers raises many types for a bad folder
        raise InvalidInputError(f"the Hugging Face model could not be loaded: {exc}") from None
    if not hasattr(model, "forward"):
        raise InvalidInputError("the Hugging Face folder does not hold a torch model")
    return tokenizer, model.eval()


def _model_max_length(tokenizer: Any, config: Any) -> int:
    """The longest input the model takes, as sentence-transformers caps it: the
    tokenizer's limit, but never more positions than the model has."""
    limit = int(getattr(tokenizer, "model_max_length", 512) or 512)
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limit = min(limit, positions)
    return limit


def pool(hidden: Any, mask: Any, modes: tuple[str, ...]) -> Any:
    """One vector per text from its token vectors, by each of ``modes`` (concatenated),
    counting only the tokens the attention mask keeps."""
    import torch

    weights = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = []
    for mode in modes:
        if mode == "cls":
            first = mask.to(torch.int).argmax(dim=1)
            pooled.append(hidden[torch.arange(hidden.shape[0]), first])
        elif mode == "max":
            pooled.append(hidden.masked_fill(weights == 0, float("-inf")).max(dim=1).values)
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            total = (hidden * weights).sum(dim=1)
            count = weights.sum(dim=1).clamp(min=1e-9)
            pooled.append(total / (count if mode == "mean" else count.sqrt()))
        elif mode == "weightedmean":
            positions = torch.arange(1, hidden.shape[1] + 1, dtype=hidden.dtype).view(1, -1, 1)
            positions = positions - mask.to(torch.int32).argmax(dim=1).view(-1, 1, 1)
            weighted = weights * positions
            total = (hidden * weighted).sum(dim=1)
            pooled.append(total / weighted.sum(dim=1).clamp(min=1e-9))
        elif mode == "lasttoken":
            length = hidden.shape[1]
            values, flipped = mask.flip(1).max(dim=1)
            last = torch.where(values == 0, 0, length - flipped - 1)
            pooled.append((hidden * weights)[torch.arange(hidden.shape[0]), last])
    return torch.cat(pooled, dim=-1)
