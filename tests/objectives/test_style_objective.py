from __future__ import annotations

import pytest
import torch

from tunify.objectives import StyleObjective, gram_matrix, rgb_to_yuv, total_variation


@pytest.fixture(scope="module")
def style_image() -> torch.Tensor:
    return torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def style(style_image) -> StyleObjective:
    torch.manual_seed(0)
    return StyleObjective(style_image, pretrained=False, tv_weight=0.5)


def test_gram_matrix_of_known_features():
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4  # normalised by C·H·W = 2·1·2
    torch.testing.assert_close(gram_matrix(features), expected)


def test_total_variation_of_known_image():
    image = torch.tensor([[0.0, 1.0], [2.0, 4.0]]).view(1, 1, 2, 2)
    # vertical |2-0|, |4-1| -> mean 2.5; horizontal |1-0|, |4-2| -> mean 1.5
    torch.testing.assert_close(total_variation(image), torch.tensor([4.0]))
    assert total_variation(torch.full((2, 3, 5, 5), 0.7)).abs().max() == 0


def test_rgb_to_yuv_grey_has_no_chroma():
    yuv = rgb_to_yuv(torch.full((1, 3, 2, 2), 0.6))
    torch.testing.assert_close(yuv[:, 0], torch.full((1, 2, 2), 0.6))
    torch.testing.assert_close(yuv[:, 1:], torch.zeros(1, 2, 2, 2), atol=1e-5, rtol=0)


def test_output_equal_to_style_and_content_leaves_only_tv(style, style_image):
    image = style_image.unsqueeze(0)
    loss = style(image, {"input": image}, torch.zeros(1, 1), 0)
    torch.testing.assert_close(loss, 0.5 * total_variation(image), atol=1e-6, rtol=1e-5)


def test_style_objective_combines_its_terms(style, style_image):
    g = torch.Generator().manual_seed(4)
    out, content = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    loss = style(out, {"input": content}, torch.zeros(2, 1), 0)
    with torch.no_grad():
        f_out, f_content = style.vgg(out)["relu3_3"], style.vgg(content)["relu3_3"]
        f_style = style.vgg(style_image.unsqueeze(0))["relu3_3"]
    style_term = (gram_matrix(f_out) - gram_matrix(f_style)).square().sum((1, 2))
    content_term = (f_out - f_content).square().mean((1, 2, 3))
    chroma = (rgb_to_yuv(out)[:, 1:] - rgb_to_yuv(content)[:, 1:]).square().mean((1, 2, 3))
    expected = 10.0 * style_term + content_term + 0.5 * total_variation(out) + chroma
    torch.testing.assert_close(loss, expected)
    assert set(style.last_terms) == {"style", "content", "tv", "chroma"}


def test_style_objective_gradients_flow(style):
    out = torch.rand(1, 3, 16, 16, requires_grad=True)
    style(out, {"input": torch.rand(1, 3, 16, 16)}, torch.zeros(1, 1), 0).sum().backward()
    assert out.grad is not None and out.grad.abs().sum() > 0


def test_bad_style_image_raises():
    with pytest.raises(ValueError, match="style_image"):
        StyleObjective(torch.rand(2, 3, 8, 8), pretrained=False)
