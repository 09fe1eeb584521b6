"""--resume refuses output made with other settings (resolved precision, device, checkpoint
contents, memory mode); --resume-any keeps it."""

import hashlib
import json
import os
from dataclasses import replace

import pytest

from refine.batch import BatchConfig, is_complete, marker_path
from refine.errors import InputError
from refine.memory import MemoryConfig
from refine.models import ModelSpec

NAMES = ["00000", "00001"]


def complete_output(cfg: BatchConfig, video: str = "v", exp_id: str = "0") -> None:
    """A finished expression as a run with ``cfg`` leaves it: PNGs and marker."""
    exp_dir = os.path.join(cfg.out, video, exp_id)
    os.makedirs(exp_dir)
    for n in NAMES:
        open(os.path.join(exp_dir, f"{n}.png"), "wb").close()
    path = marker_path(cfg.out, video, exp_id)
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        json.dump({"settings": cfg.settings()}, f)


def config(tmp_path, **spec) -> BatchConfig:
    base = {"size": "tiny", "device": "cpu", "random_weights": True}
    return BatchConfig("d", "s", str(tmp_path), ModelSpec(**{**base, **spec}), resume=True)


def test_settings_record_what_the_masks_depend_on(tmp_path):
    s = config(tmp_path, image_size=128).settings()
    assert s["precision"] == "fp32"  # "auto", resolved for the device
    assert s["device"] == "cpu"
    assert s["memory"] == {"mode": "sam2"}
    assert s["prompt"] == "mask" and s["model"]["image_size"] == 128
    assert s["model"]["fill_holes"] == 0
    assert config(tmp_path, fill_holes=8).settings()["model"]["fill_holes"] == 8
    assert json.loads(json.dumps(s)) == s


def test_auto_precision_on_cpu_then_cuda_is_refused(tmp_path):
    """The old marker said "auto" for both: a CPU run resumed on CUDA mixed fp32 and fp16."""
    cpu = config(tmp_path)
    complete_output(cpu)
    assert is_complete(cpu, "v", "0", NAMES)
    cuda = config(tmp_path, device="cuda:1")
    with pytest.raises(InputError, match=r"precision: 'fp32' → 'fp16'.*--resume-any"):
        is_complete(cuda, "v", "0", NAMES)
    assert is_complete(replace(cuda, resume_any=True), "v", "0", NAMES)


def test_other_memory_mode_is_refused(tmp_path):
    complete_output(config(tmp_path))
    with pytest.raises(InputError, match="memory"):
        is_complete(replace(config(tmp_path), memory=MemoryConfig("samurai")), "v", "0", NAMES)


def test_checkpoint_contents_are_hashed(tmp_path):
    ckpt = tmp_path / "sam2.1_hiera_tiny.pt"
    ckpt.write_bytes(b"weights one")
    out = tmp_path / "out"
    cfg = replace(config(out, random_weights=False, checkpoint=str(ckpt)))
    assert (
        cfg.settings()["model"]["checkpoint_sha256"] == hashlib.sha256(b"weights one").hexdigest()
    )
    complete_output(cfg)
    ckpt.write_bytes(b"weights two, same file name")
    with pytest.raises(InputError, match="checkpoint_sha256|model"):
        is_complete(cfg, "v", "0", NAMES)
