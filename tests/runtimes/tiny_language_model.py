"""A tiny GPT-2-style language model and tokenizer, built and saved here the way users
save theirs (``save_pretrained``: safetensors weights, ``tokenizer.json``, a chat
template): random weights from a fixed seed, a byte-level BPE tokenizer trained on a few
sentences. Byte-level, so any text (emoji included) has tokens, and generated tokens may
split a character: what incremental detokenization must get right."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"

END = "<|endoftext|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
)
SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "hello world, how are you today?",
    "once upon a time there was a tiny language model",
    "user: what is the capital of France? assistant: Paris",
]


def tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=[END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(SENTENCES * 3, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=END, bos_token=END)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build(
    folder: Path, *, context: int = 1024, end_scale: float = 1.0, chat_template: bool = True
) -> Path:
    """Save the model and tokenizer in ``folder``. ``end_scale`` scales the end token's
    embedding (tied to the output layer): 0 makes its logit 0 whatever the input, far
    below the best token's, so greedy generations run to ``max_tokens`` (the tests of
    long and cancelled generations rely on it); 2.5 makes some prompts end early."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    text = tokenizer()
    if not chat_template:
        text.chat_template = None
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(text),
        n_positions=context,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=text.eos_token_id,
        eos_token_id=text.eos_token_id,
        initializer_range=0.3,
    )
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        model.transformer.wte.weight[text.eos_token_id] *= end_scale
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    text.save_pretrained(folder)
    return folder


def with_config_change(source: Path, target: Path, **changes: Any) -> Path:
    """A copy of a saved folder whose config.json has ``changes`` merged in."""
    import shutil

    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    config.update(changes)
    (target / "config.json").write_text(json.dumps(config))
    return target
