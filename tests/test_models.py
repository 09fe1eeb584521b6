import pytest

from refine.errors import InputError
from refine.models import ModelSpec, resolve_checkpoint


def test_missing_checkpoint_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr("refine.models.CHECKPOINT_DIR", str(tmp_path))
    with pytest.raises(InputError, match=r"python checkpoints/download.py small"):
        resolve_checkpoint("small", allow_download=False)
    with pytest.raises(InputError, match="does not exist"):
        resolve_checkpoint("small", str(tmp_path / "nope.pt"))
    (tmp_path / "sam2.1_hiera_small.pt").write_bytes(b"x")
    assert resolve_checkpoint("small", allow_download=False) == str(
        tmp_path / "sam2.1_hiera_small.pt"
    )


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"size": "huge"}, "unknown SAM2 size 'huge'"),
        ({"image_size": 100}, "multiple of 32"),
        ({"random_weights": True, "checkpoint": "a.pt"}, "not both"),
    ],
)
def test_bad_model_specs(kwargs, message):
    with pytest.raises(InputError, match=message):
        ModelSpec(**kwargs)
