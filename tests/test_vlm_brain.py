"""The local VLM brain (``TransformersVLM``) on a tiny, randomly initialised Qwen2-VL built here.

Nothing is downloaded: the tokenizer is trained on generated text, the model has random
weights. Its replies are garbage, which is the point: the adapter must turn them into
invalid tool calls, and the graph must retry, fall back to the offline policy and finish.
"""

from __future__ import annotations

import base64
import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

transformers = pytest.importorskip("transformers", reason="the VLM brain needs the optional transformers package")
pytest.importorskip("tokenizers", reason="building the tiny test tokenizer needs the tokenizers package")

from restoreagent.graph.brains.transformers_vlm import TransformersVLM, parse_decision  # noqa: E402

torch.set_num_threads(1)

SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"
]

#: Qwen2-VL's own chat template (without the optional "Picture N:" labels).
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _corpus(lines: int = 300):
    rng = random.Random(0)
    words = ("the image is noisy blurry dark hazy rain jpeg done tool args image_id denoise deblur dehaze "
             "derain restore photo quality step next call reply json schema").split()
    for _ in range(lines):
        yield json.dumps({"tool": rng.choice(words), "args": {"image_id": f"img_{rng.randrange(1000):03d}"}})
        yield " ".join(rng.choice(words) for _ in range(12))


@pytest.fixture(scope="module")
def tiny_qwen2vl(tmp_path_factory) -> Path:
    """A Qwen2-VL folder (model + processor) as ``save_pretrained`` writes it: ~100k random parameters."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    out = tmp_path_factory.mktemp("tiny-qwen2vl")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(_corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHAT_TEMPLATE
    )
    # 28×28 … 56×56 pixels: every image becomes at most 4×4 patches → 4 vision tokens.
    small = dict(min_pixels=28 * 28, max_pixels=56 * 56)
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**small),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**small),
        chat_template=CHAT_TEMPLATE,
    )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL}
    config = Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=8192,
            # head_dim 16 → 8 rotary frequencies, split over (time, height, width).
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=1, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2,
            patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _png_b64(size: int = 48) -> str:
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_invoke_with_an_image_returns_an_ai_message(tiny_qwen2vl):
    brain = TransformersVLM(model_dir=str(tiny_qwen2vl), device="cpu", max_new_tokens=12)
    reply = brain.invoke([
        SystemMessage("You restore photos."),
        HumanMessage(content=[
            {"type": "text", "text": "What is wrong with this photo?"},
            {"type": "image", "base64": _png_b64(), "mime_type": "image/png"},
        ]),
    ])
    assert isinstance(reply, AIMessage)
    # Random weights: almost surely garbage, reported as an invalid call; a parsed call is fine too.
    assert reply.invalid_tool_calls or reply.tool_calls or str(reply.content).strip()
    if reply.invalid_tool_calls:
        assert "no JSON decision" in reply.invalid_tool_calls[0]["error"]


def test_messages_become_chat_turns_with_images_and_tools(tiny_qwen2vl):
    brain = TransformersVLM(model_dir=str(tiny_qwen2vl), image_max_side=32)
    schema = {"type": "object", "properties": {"image_id": {"type": "string"}}}
    tool = {"type": "function",
            "function": {"name": "denoise_nlmeans", "description": "Remove noise.", "parameters": schema}}
    chat, images = brain.to_chat([
        SystemMessage("sys"),
        HumanMessage(content=[{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{_png_b64(64)}"}},
                              {"type": "text", "text": "fix it"}]),
        AIMessage(content="", tool_calls=[{"name": "denoise_nlmeans", "args": {"image_id": "a"}, "id": "c1"}]),
        ToolMessage(content="accepted: noise 0.8 → 0.1", tool_call_id="c1", name="denoise_nlmeans"),
    ], [tool])
    assert [t["role"] for t in chat] == ["system", "user", "assistant", "user"]
    system = chat[0]["content"][0]["text"]
    assert system.startswith("sys") and "denoise_nlmeans: Remove noise." in system and '"done"' in system
    assert chat[1]["content"][0] == {"type": "image"} and len(images) == 1 and max(images[0].size) == 32
    assert json.loads(chat[2]["content"][0]["text"]) == {"tool": "denoise_nlmeans", "args": {"image_id": "a"}}
    assert "accepted" in "".join(b["text"] for b in chat[3]["content"])


@pytest.mark.parametrize(
    "text, kind",
    [
        ('Sure:\n```json\n{"tool": "denoise_nlmeans", "args": {"image_id": "img_1", "note": "a } b"}}\n```\nOK', "call"),
        ('{"name": "denoise_nlmeans", "arguments": {"image_id": "img_1"}}', "call"),
        ('I think {not json} but then {"done": "the photo looks clean"}', "done"),
        ("@@## random tokens ``` 8192", "invalid"),
        ('{"tool": 3, "args": []}', "invalid"),
        ('{"answer": "denoise"}', "invalid"),
        ("", "invalid"),
    ],
    ids=["fenced-call", "qwen-keys", "done-after-prose", "garbage", "wrong-types", "wrong-shape", "empty"],
)
def test_parse_decision(text, kind):
    msg = parse_decision(text)
    if kind == "call":
        assert msg.tool_calls[0]["name"] == "denoise_nlmeans" and msg.tool_calls[0]["args"]["image_id"] == "img_1"
        assert msg.tool_calls[0]["id"].startswith("call_") and not msg.invalid_tool_calls
    elif kind == "done":
        assert msg.content == "the photo looks clean" and not msg.tool_calls and not msg.invalid_tool_calls
    else:
        bad = msg.invalid_tool_calls[0]
        assert not msg.tool_calls and bad["name"] is None and bad["args"] == text[:500]
        assert "no JSON decision" in bad["error"]
    if "note" in text:
        assert msg.tool_calls[0]["args"]["note"] == "a } b"


def test_a_missing_model_dir_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="config.json missing"):
        TransformersVLM(model_dir=str(tmp_path / "nowhere"))
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ValueError, match="model_type 'llama'"):
        TransformersVLM(model_dir=str(tmp_path))


def test_graph_retries_falls_back_and_finishes(tiny_qwen2vl, tmp_path):
    from PIL import Image

    from restoreagent.graph.configuration import Configuration
    from restoreagent.graph.graph import build_graph
    from restoreagent.tools import default_registry
    from restoreagent.tools.registry import ToolRegistry

    rng = np.random.default_rng(1)
    base = np.linspace(0.2, 0.8, 48, dtype=np.float32)[None, :, None].repeat(48, 0).repeat(3, 2)
    noisy = np.clip(base + rng.normal(0, 30 / 255, base.shape), 0, 1)
    path = tmp_path / "noisy.png"
    Image.fromarray((noisy * 255 + 0.5).astype(np.uint8)).save(path)

    config = Configuration(work_dir=tmp_path / "runs", weights_dir=tmp_path / "none", max_steps=2, brain_retries=1)
    registry = ToolRegistry([default_registry[n] for n in ("denoise_nlmeans", "lowlight_gamma")])
    brain = TransformersVLM(model_dir=str(tiny_qwen2vl), device="cpu", max_new_tokens=8)
    graph = build_graph(config, brain=brain, registry=registry)
    events = list(graph.stream({"image": str(path)}, stream_mode="custom"))

    fallbacks = [e for e in events if e["event"] == "brain_fallback"]
    assert fallbacks and "no JSON decision" in fallbacks[0]["reason"]
    finished = [e for e in events if e["event"] == "finished"]
    assert finished and Path(finished[0]["output"]).is_file()
