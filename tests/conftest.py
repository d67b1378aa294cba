"""Shared fixtures for the plugin's own tests.

Tests that need a model use either the embedded default (the plugin's session ``model`` fixture:
Gemma 3 270M, a real pretrained model) or ``tiny_gpt2``: a randomly initialised GPT-2-architecture
model (learned positions, LayerNorm with biases, tied embeddings) with a byte-level BPE tokenizer
trained on a few sentences, written to a temporary directory and loaded through the same
``load_model`` path as any local HuggingFace directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# pytester's in-process runs drop the modules an inner session imported; re-importing `datasets`
# (pulled by transformer_lens) then fails in pyarrow ("type extension already defined"). Import
# them once here so that every inner session shares the outer one's modules.
import transformer_lens  # noqa: F401, E402
import transformer_lens.model_bridge  # noqa: F401, E402

pytest_plugins = ["pytester"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow", action="store_true", default=False,
        help="Also run the tests marked `slow`: the full-length versions of sampled checks (every SIGKILL "
        "point of the snapshot fault injection, PYTEST_ANNOTATE_KILL_TRIALS setting its random-time kills; "
        "Gemma's whole suite run twice; every component of Gemma's sweeps re-run alone; Gemma's cold-load "
        "bit-identity; SmolLM2's live GGUF round trip). .ci/run runs them after the default run; the "
        "default run covers the same code with fewer trials or a recorded reference.",
    )


def pytest_configure(config: pytest.Config) -> None:
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        # `pytest tests/ -n 2 --dist loadscope` (the README's command): the workers share the cores, so
        # each gets its share of torch threads, and so do the pytest processes some tests start (the
        # reproducibility pairs, the workflow dry runs). Oversubscribed threads spin against each other.
        share = str(max(1, (os.cpu_count() or 1) // int(workers)))
        os.environ["OMP_NUM_THREADS"] = share
        import torch

        torch.set_num_threads(int(share))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: the full-length run; pass --run-slow to run it")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)

TINY_CORPUS = [
    "The capital of Ireland is Dublin. The capital of France is Paris.",
    "January February March April May June July August September October November December",
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday",
    "A B C D E F G H I J K L M N O P Q R S T U V W X Y Z",
    "one two three four five six seven eight nine ten 1 2 3 4 5 6 7 8 9 10",
    "When John and Mary went to the store, John gave the bag to Mary.",
]


def make_tiny_gpt2(directory: Path, *, seed: int = 0, n_layer: int = 2, n_head: int = 4, n_embd: int = 64) -> Path:
    """Write a random GPT-2-architecture model and its tokenizer to ``directory``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(TINY_CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>"
    )
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=tok.get_vocab_size(), n_positions=64, n_layer=n_layer, n_head=n_head, n_embd=n_embd,
        bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, architectures=["GPT2LMHeadModel"],
    )
    model = GPT2LMHeadModel(config).eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding a random 2-layer GPT-2-architecture model (see module docstring)."""
    return make_tiny_gpt2(tmp_path_factory.mktemp("tiny") / "tiny-gpt2")


@pytest.fixture(scope="session")
def tiny_gpt2(tiny_gpt2_dir: Path):
    """The tiny GPT-2 model loaded as a Lab, in compat processing."""
    from pytest_annotate import load_model

    return load_model(str(tiny_gpt2_dir), device="cpu")


@pytest.fixture(scope="session")
def tiny_gpt2_raw(tiny_gpt2_dir: Path):
    """The tiny GPT-2 model loaded as a Lab, in raw (HuggingFace) processing."""
    from pytest_annotate import load_model

    return load_model(str(tiny_gpt2_dir), device="cpu", processing="raw")
