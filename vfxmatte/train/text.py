"""A tiny CLIP text encoder and a word-level tokenizer, built offline for the bundled model.

A real Stable Diffusion folder brings its pretrained CLIP; the small CPU model cannot, so
it gets a ``transformers.CLIPTextModel`` of a few layers trained together with the UNet on
the composite generator's captions ("the red star", "the object on the left").

Its tokenizer is a ``tokenizers`` WordLevel model wrapped in ``PreTrainedTokenizerFast``:
lower-cased words (punctuation dropped), CLIP's ``<|startoftext|>``/``<|endoftext|>`` around
them, padding with ``<|endoftext|>`` as CLIP does, unknown words → ``<|unk|>``.  It is
saved as ``tokenizer/tokenizer.json`` in the model folder and needs no download.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BOS, EOS, UNK = "<|startoftext|>", "<|endoftext|>", "<|unk|>"
#: The fixed prompt of small training patches (the paper's "enhance details").
DETAIL_PROMPT = "enhance details"
#: Every word the composite generator's captions use, plus the detail prompt's.  Training
#: adds the words of its own captions, so a vocabulary never misses one it was trained on.
CAPTION_WORDS = (
    "animal at black blob blue bottle bottom box brown card circle creature cross cyan diamond foreground "
    "from furry glass green grey hexagon in left leftmost main middle object on one orange oval pentagon "
    "person pink polygon purple rectangle red right rightmost ring second sphere square star subject the top "
    "topmost triangle vase white yellow enhance details"
).split()
_WORD = re.compile(r"\w+|[^\w\s]")


def caption_words(captions: Iterable[str]) -> list[str]:
    """Sorted lower-case words of ``captions`` together with :data:`CAPTION_WORDS`."""
    words = set(CAPTION_WORDS)
    for caption in captions:
        words.update(_WORD.findall(caption.lower()))
    return sorted(words)


def build_tokenizer(words: Iterable[str], max_length: int = 16) -> Any:
    """A word-level ``PreTrainedTokenizerFast`` over ``words`` (special tokens first)."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {BOS: 0, EOS: 1, UNK: 2}
    for word in words:
        vocab.setdefault(word, len(vocab))
    core = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK))
    # Punctuation carries nothing for a word-level vocabulary: "the red star." is "the red star".
    core.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Lowercase(), normalizers.Replace(Regex(r"[^\w\s]"), " ")]
    )
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=EOS,
        model_max_length=max_length,
    )


def build_text_encoder(config: dict[str, Any], vocab_size: int, hidden_size: int) -> Any:
    """A small ``CLIPTextModel``; ``hidden_size`` must equal the UNet's cross-attention width."""
    from transformers import CLIPTextConfig, CLIPTextModel

    layers = int(config.get("layers", 2))
    heads = int(config.get("heads", 4))
    text_config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=int(config.get("intermediate_size", 4 * hidden_size)),
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=int(config.get("max_length", 16)),
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    return CLIPTextModel(text_config)


def load_tokenizer(folder: Path) -> Any:
    """A CLIP BPE tokenizer (``vocab.json`` + ``merges.txt``, as in SD folders) or a fast one."""
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        from transformers import CLIPTokenizer

        return CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(folder, local_files_only=True)
