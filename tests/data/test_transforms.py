import numpy as np
import torch

from seginv.data.transforms import EvalTransform, TrainTransform, normalize

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _pair():
    image = np.zeros((40, 60, 3), np.uint8)
    label = np.zeros((40, 60), np.uint8)
    image[:, 30:] = 255
    label[:, 30:] = 7
    label[0, :] = 255
    return image, label


def test_train_transform_resizes_labels_without_blending_values():
    torch.manual_seed(0)
    t = TrainTransform(32, MEAN, STD, scale=(0.3, 1.0))
    for _ in range(20):
        img, lab = t(*_pair())
        assert img.shape == (3, 32, 32) and img.dtype == torch.float32
        assert lab.shape == (32, 32) and lab.dtype == torch.int64
        assert set(lab.unique().tolist()) <= {0, 7, 255}


def test_image_and_label_stay_aligned_through_crop_and_flip():
    torch.manual_seed(1)
    t = TrainTransform(32, MEAN, STD, scale=(0.2, 1.0))
    for _ in range(20):
        img, lab = t(*_pair())
        white = img[0] > 0  # normalised 255 -> +2, 0 -> -2
        agree = (white == (lab == 7))[lab != 255].float().mean()
        assert agree > 0.9  # only the resampled boundary column may differ


def test_crop_larger_than_the_image_pads_labels_with_ignore():
    torch.manual_seed(0)
    t = TrainTransform(32, MEAN, STD, scale=(3.0, 3.0), ratio=(1.0, 1.0), flip=False)
    _, lab = t(*_pair())
    assert (lab == 255).any() and (lab != 255).any()


def test_eval_transform_keeps_full_images_or_centre_crops():
    img, lab = EvalTransform(MEAN, STD)(*_pair())
    assert img.shape == (3, 40, 60) and lab.shape == (40, 60)
    img, lab = EvalTransform(MEAN, STD, crop=32)(*_pair())
    assert img.shape == (3, 32, 32) and lab.shape == (32, 32)


def test_normalize_maps_pixels_through_mean_and_std():
    x = torch.tensor([0, 128, 255], dtype=torch.uint8).view(3, 1, 1)
    out = normalize(x, MEAN, STD).flatten()
    assert torch.allclose(out, (torch.tensor([0, 128, 255]) / 255 - 0.5) / 0.25)
