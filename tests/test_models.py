"""Model loading: architecture inference, checkpoints, zoo lookup, devices, dtypes."""

import os

import pytest
import torch

from fiftyone_samrs.segmenting.sam.models import (
    SAM_CHECKPOINT_FILES,
    SAM_ZOO_NAMES,
    ModelNotFoundError,
    build_sam_from_config,
    config_from_state_dict,
    find_checkpoint,
    load_sam,
    official_config,
    read_state_dict,
    resolve_device,
    resolve_dtype,
)
from fiftyone_samrs.segmenting.sam.tiny import build_tiny_sam, save_tiny_checkpoint


@pytest.mark.parametrize("model_type", ["vit_b", "vit_l", "vit_h"])
def test_official_architectures_are_recognised_from_shapes(model_type):
    with torch.device("meta"):  # shapes only, no memory
        sam = build_sam_from_config(official_config(model_type))
    cfg = config_from_state_dict(sam.state_dict())
    assert cfg.model_type == model_type
    ref = official_config(model_type)
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads) == (ref.embed_dim, ref.depth, ref.num_heads)
    assert tuple(cfg.global_attn_indexes) == tuple(ref.global_attn_indexes)
    assert cfg.window_size == 14 and cfg.img_size == 1024 and cfg.mlp_ratio == 4.0


def test_tiny_sam_is_deterministic_and_uses_the_real_decoder():
    a, b, c = build_tiny_sam(0), build_tiny_sam(0), build_tiny_sam(1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    with torch.device("meta"):
        ref = build_sam_from_config(official_config("vit_b"))
    ref_sd = ref.state_dict()
    for k, v in sa.items():
        if k.startswith("mask_decoder.") or k.startswith("prompt_encoder."):
            assert v.shape == ref_sd[k].shape, k
    assert a.image_encoder.img_size == 1024


def test_tiny_checkpoint_round_trip_infers_architecture(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "tiny.pth", seed=3)
    sam = load_sam(checkpoint=path)  # no model name: read from the shapes
    ref = build_tiny_sam(3).state_dict()
    got = sam.state_dict()
    assert set(got) == set(ref) and all(torch.equal(got[k], ref[k]) for k in ref)
    cfg = config_from_state_dict(got)
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, tuple(cfg.global_attn_indexes)) == (32, 2, 2, (1,))
    assert cfg.model_type == "custom"
    assert not sam.training


def test_load_sam_checks_the_named_type(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "tiny.pth")
    with pytest.raises(ValueError, match="not vit_b"):
        load_sam("vit_b", checkpoint=path)
    assert isinstance(load_sam("tiny"), torch.nn.Module)


def test_read_state_dict_unwraps_and_reports_bad_files(tmp_path):
    sd = build_tiny_sam().state_dict()
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": {"module." + k: v for k, v in sd.items()}}, wrapped)
    got = read_state_dict(wrapped)
    assert set(got) == set(sd)
    bad = tmp_path / "bad.pth"
    bad.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="bad.pth"):
        load_sam(checkpoint=bad)
    other = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="not a Segment Anything state dict"):
        load_sam(checkpoint=other)
    with pytest.raises(ModelNotFoundError, match="missing.pth"):
        load_sam(checkpoint=tmp_path / "missing.pth")


def test_zoo_names_find_the_zoo_file_and_missing_ones_say_where(tmp_path, monkeypatch):
    monkeypatch.setenv("FIFTYONE_MODEL_ZOO_DIR", str(tmp_path))
    assert SAM_ZOO_NAMES["vit_h"] == "segment-anything-vith-torch"
    with pytest.raises(ModelNotFoundError) as err:
        find_checkpoint("vit_h", download=False)
    msg = str(err.value)
    assert os.path.join(str(tmp_path), SAM_CHECKPOINT_FILES["vit_h"]) in msg
    assert "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth" in msg
    assert "checkpoint=PATH" in msg
    placed = tmp_path / SAM_CHECKPOINT_FILES["vit_b"]
    placed.write_bytes(b"x")
    assert find_checkpoint("segment-anything-vitb-torch", download=False) == str(placed)
    assert find_checkpoint("vit_b", download=False) == str(placed)
    with pytest.raises(ValueError, match="unknown SAM model"):
        find_checkpoint("vit_x", download=False)
    with pytest.raises(ValueError, match="needs a model name"):
        load_sam()


def test_devices_and_dtypes():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device(None).type in ("cpu", "mps")
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    # "auto" on a CPU: bf16 where it is fast (AMX/AVX512-BF16) and the switch is on
    from fiftyone_samrs.segmenting.sam.models import CPU_BF16_AUTO, cpu_bf16_support

    want = torch.bfloat16 if (cpu_bf16_support().fast and CPU_BF16_AUTO) else None
    assert resolve_dtype("cpu") is want
    assert resolve_dtype("cpu", "fp32") is None
    assert resolve_dtype("cpu", "bf16") is torch.bfloat16
    assert resolve_dtype("cpu", torch.float16) is torch.float16
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("cpu", "int8")
