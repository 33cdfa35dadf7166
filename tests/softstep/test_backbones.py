"""make_backbone: bad inputs."""

import pytest
from flax import nnx

from softstep import make_backbone


def test_bad_inputs():
    rngs = nnx.Rngs(0)
    with pytest.raises(ValueError, match=r"make_backbone: kind must be one of \['mlp'.*got 'vit'"):
        make_backbone("vit", (3,), rngs=rngs)
    with pytest.raises(ValueError, match=r"make_backbone: hidden must be positive sizes, got \(\)"):
        make_backbone("mlp", (3,), hidden=(), rngs=rngs)
    with pytest.raises(ValueError, match="make_backbone: embed_dim must be a positive int, got 0"):
        make_backbone("resmlp", (3,), embed_dim=0, rngs=rngs)
    with pytest.raises(ValueError, match=r"input_shape must be positive, got \(0,\)"):
        make_backbone("mlp", (0,), rngs=rngs)
    with pytest.raises(ValueError, match=r"make_backbone: cnn needs image inputs .* got \(5,\)"):
        make_backbone("cnn", (5,), rngs=rngs)
