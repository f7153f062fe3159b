"""Subword units: a sentencepiece model (unigram or BPE) trained on the training split's tokens only,
and token lists turned into its pieces (prepare.subword).

Each token of the analyzer is a word to sentencepiece: a piece never crosses a token boundary, and
a token's first piece starts with "▁". Over MeCab morphemes this is the kortok study's MeCab-then-BPE
(Park et al., AACL 2020); over the whitespace analyzer it is sentencepiece on the normalised raw text.
The text is normalised already (tokenize.unicode), so sentencepiece's own normaliser is off.

Training is deterministic: the input is the training split's token counts, sorted, on one thread,
so the same training rows give the same model bytes, whatever their order and whatever the
validation and test rows hold. The model travels as bytes (base64) inside preprocess.json, which
prepare writes, train copies into the bundle and the MLflow model carries, so prediction and
serving cut raw text into exactly the pieces training saw.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Sequence

from pipeline.core.config import SubwordParams
from pipeline.core.errors import StageError

# A tab or newline inside a token would end a line of the trainer's "token<TAB>count" input: both
# become spaces, for training and encoding alike.
_LINE_BREAKS = str.maketrans({"\t": " ", "\n": " ", "\r": " "})
SUBWORD_KEY = "subword"   # preprocess.json's entry for the model (Subword.spec)
UNK = "<unk>"   # sentencepiece's piece 0: characters rarer than character_coverage


def _clean(token: str) -> str:
    return token.translate(_LINE_BREAKS)


@dataclass(frozen=True)
class Subword:
    """A trained sentencepiece model (its serialised bytes) and how it was asked for."""
    proto: bytes
    model: str = ""
    vocab_size: int = 0
    character_coverage: float = 0.0

    @cached_property
    def _processor(self):
        import sentencepiece as spm

        return spm.SentencePieceProcessor(model_proto=self.proto)

    @cached_property
    def _names(self) -> list[str]:
        sp = self._processor
        return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]

    @property
    def size(self) -> int:
        """Pieces the model has, <unk> included (hard_vocab_limit is off: at most vocab_size)."""
        return len(self._names)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.proto).hexdigest()

    def pieces(self, token_lists: Iterable[Sequence[str]]) -> list[list[str]]:
        """Each token list as the concatenated pieces of its tokens; each distinct token is cut once.

        Pieces come from ids, so an uncovered character is the piece <unk>, not its own surface.
        """
        lists = [list(t) for t in token_lists]
        distinct = sorted({tok for toks in lists for tok in toks})
        names = self._names
        ids = self._processor.encode([_clean(t) for t in distinct], out_type=int) if distinct else []
        cut = {tok: [names[i] for i in row] for tok, row in zip(distinct, ids)}
        return [[p for tok in toks for p in cut[tok]] for toks in lists]

    def spec(self) -> dict:
        """Its entry in preprocess.json."""
        from importlib import metadata

        return {"model": self.model, "vocab_size": self.vocab_size,
                "character_coverage": self.character_coverage, "pieces": self.size,
                "sentencepiece": metadata.version("sentencepiece"), "sha256": self.sha256,
                "proto": base64.b64encode(self.proto).decode("ascii")}

    @classmethod
    def from_spec(cls, spec: dict, where: str) -> Subword:
        """The model of a preprocess.json entry, its bytes checked against their sha256."""
        try:
            proto = base64.b64decode(spec["proto"], validate=True)
            expected = spec["sha256"]
            found = cls(proto, str(spec.get("model", "")), int(spec.get("vocab_size", 0)),
                        float(spec.get("character_coverage", 0.0)))
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise StageError(f"{where}: its subword entry is damaged ({type(exc).__name__}: {exc})") from None
        if found.sha256 != expected:
            raise StageError(f"{where}: the subword model's bytes do not match their sha256 (damaged)")
        try:
            found._names   # noqa: B018 (parsed now, not on the first request)
        except (RuntimeError, OSError) as exc:
            raise StageError(f"{where}: sentencepiece cannot read the subword model: {exc}") from None
        return found


def train_subword(token_lists: Iterable[Sequence[str]], cfg: SubwordParams, seed: int = 0) -> Subword:
    """A sentencepiece model of `cfg.model` trained on these token lists (the training split's)."""
    import sentencepiece as spm

    if cfg.model == "none":
        raise ValueError("train_subword: prepare.subword.model is none")
    counts = Counter(_clean(tok) for toks in token_lists for tok in toks)
    lines = [f"{tok}\t{n}" for tok, n in sorted(counts.items()) if tok.strip()]
    if not lines:
        raise StageError("prepare.subword: the training split has no tokens to train a subword model on")
    spm.set_random_generator_seed(seed)   # nothing here samples, but no random_device either
    out = io.BytesIO()
    try:
        spm.SentencePieceTrainer.Train(
            sentence_iterator=iter(lines), model_writer=out, input_format="tsv",
            model_type=cfg.model, vocab_size=cfg.vocab_size, character_coverage=cfg.character_coverage,
            hard_vocab_limit=False,         # fewer pieces than asked when the data has fewer
            normalization_rule_name="identity",
            unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1, unk_piece=UNK,
            num_threads=1, shuffle_input_sentence=False,
            max_sentence_length=1 << 16, minloglevel=2)
    except RuntimeError as exc:
        raise StageError(f"prepare.subword: sentencepiece could not train a {cfg.model} model "
                         f"(vocab_size {cfg.vocab_size}): {exc}") from None
    return Subword(out.getvalue(), cfg.model, cfg.vocab_size, cfg.character_coverage)
