"""Encoders: offline ImageNet weights for efficientnet_lite*, weight files for resnets, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import timm
import torch
import torch.nn.functional as F

from depth_estimation_ros.networks.encoders import (
    EncoderWeightsError,
    build_encoder,
    imagenet_state_dict_for_timm,
    packaged_weight_file,
)
from depth_estimation_ros.networks.layers import IMAGENET_MEAN, IMAGENET_STD

CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = {967, 968, 504}  # espresso, cup, coffee mug


def _imagenet_input(rgb: np.ndarray, size: int) -> torch.Tensor:
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
    h, w = x.shape[-2:]
    s = min(h, w)
    x = x[..., (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


@pytest.mark.parametrize("name,size", [("efficientnet_lite0", 224), ("efficientnet_lite1", 240),
                                       ("efficientnet_lite2", 260)])
def test_packaged_lite_weights_classify_scikit_image_photos(name, size):
    state = imagenet_state_dict_for_timm(name)
    classifier = timm.create_model(name, pretrained=False).eval()
    assert list(state) == list(classifier.state_dict())  # one-to-one, in order, shapes verified by the loader
    classifier.load_state_dict(state, strict=True)
    with torch.no_grad():
        cat_top5 = set(classifier(_imagenet_input(skimage.data.chelsea(), size)).topk(5).indices[0].tolist())
        coffee_top5 = set(classifier(_imagenet_input(skimage.data.coffee(), size)).topk(5).indices[0].tolist())
        cat_top1 = int(classifier(_imagenet_input(skimage.data.chelsea(), size)).argmax())
    assert cat_top1 in CAT_CLASSES
    assert cat_top5 & CAT_CLASSES
    assert coffee_top5 & COFFEE_CLASSES


def test_packaged_weights_map_by_shape_onto_timm():
    raw = torch.load(packaged_weight_file("efficientnet_lite0"), map_location="cpu", weights_only=True)
    mapped = imagenet_state_dict_for_timm("efficientnet_lite0")
    assert len(raw) == len(mapped)
    for (raw_key, raw_tensor), (key, tensor) in zip(raw.items(), mapped.items()):
        assert raw_tensor.shape == tensor.shape, (raw_key, key)
        assert torch.equal(raw_tensor, tensor)


def test_pretrained_encoder_features_match_the_classifier_trunk():
    encoder = build_encoder("efficientnet_lite0", pretrained=True).eval()
    classifier = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    classifier.load_state_dict(imagenet_state_dict_for_timm("efficientnet_lite0"))
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        last = encoder(x)[-1]
        trunk = classifier.blocks(classifier.bn1(classifier.conv_stem(x)))
    assert torch.allclose(last, trunk, atol=1e-5)
    assert [f.shape[-1] for f in encoder(x)] == [48, 24, 12, 6, 3]


def test_resnet_weights_from_a_user_file(tmp_path):
    source = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    encoder = build_encoder("resnet18", pretrained=True, weights_path=path)
    assert torch.equal(encoder.body.state_dict()["layer4.1.conv2.weight"], source.state_dict()["layer4.1.conv2.weight"])
    # six-channel stem for pose networks: RGB kernel repeated for both frames and halved
    pose_encoder = build_encoder("resnet18", pretrained=True, weights_path=path, in_chans=6)
    stem = pose_encoder.body.state_dict()["conv1.weight"]
    assert torch.allclose(stem[:, :3], source.conv1.weight / 2) and torch.allclose(stem[:, 3:], source.conv1.weight / 2)


def test_weight_file_errors_are_clear(tmp_path):
    with pytest.raises(EncoderWeightsError, match="does not exist"):
        build_encoder("resnet18", weights_path=tmp_path / "missing.pth")
    wrong = tmp_path / "resnet50.pth"
    torch.save(timm.create_model("resnet50", pretrained=False).state_dict(), wrong)
    with pytest.raises(EncoderWeightsError, match="not a checkpoint of this architecture|does not match"):
        build_encoder("resnet18", weights_path=wrong)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(EncoderWeightsError, match="cannot read"):
        build_encoder("resnet18", weights_path=garbage)
    with pytest.raises(EncoderWeightsError, match="pretrained=False"):
        build_encoder("resnet50", pretrained=True)
    with pytest.raises(ValueError, match="unknown encoder"):
        build_encoder("vgg16")
