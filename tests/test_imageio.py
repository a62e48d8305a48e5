"""Reading every kind of photo users have; refusing what is not one."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from restoreagent.tools.util.imageio import ImageError, load_image, save_png, visible_part


@pytest.fixture()
def rgb8() -> np.ndarray:
    y, x = np.mgrid[0:48, 0:64]
    return np.dstack([x * 4, y * 5, (x + y) * 2]).astype(np.uint8)


def test_sixteen_bit_png_and_tiff_keep_precision(tmp_path, rgb8):
    import tifffile

    g16 = (np.linspace(0, 65535, 48 * 64).reshape(48, 64)).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    img = load_image(tmp_path / "g16.png")
    assert img.rgb.shape == (48, 64, 3) and np.allclose(img.rgb[..., 0], g16 / 65535, atol=1e-4)
    rgb16 = rgb8.astype(np.uint16) * 257
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb16)
    t = load_image(tmp_path / "rgb16.tif")
    assert t.rgb.shape == (48, 64, 3) and np.allclose(t.rgb, rgb8 / 255, atol=1 / 255)


def test_cmyk_jpeg_palette_and_grayscale_become_rgb(tmp_path, rgb8):
    Image.fromarray(rgb8).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    c = load_image(tmp_path / "cmyk.jpg")
    assert c.mode == "CMYK" and c.rgb.shape == (48, 64, 3)
    assert np.abs(c.rgb - rgb8 / 255).mean() < 0.05
    Image.fromarray(rgb8).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").rgb.shape == (48, 64, 3)
    Image.fromarray(rgb8[..., 0]).save(tmp_path / "l.png")
    gray = load_image(tmp_path / "l.png").rgb
    assert np.array_equal(gray[..., 0], gray[..., 2])


def test_alpha_is_kept_aside_and_written_back(tmp_path, rgb8):
    alpha = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))
    Image.fromarray(np.dstack([rgb8, alpha])).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.alpha is not None and np.allclose(img.alpha, alpha / 255, atol=1e-6)
    save_png(img.rgb, tmp_path / "out.png", alpha=img.alpha)
    back = np.asarray(Image.open(tmp_path / "out.png"))
    assert back.shape == (48, 64, 4) and np.array_equal(back[..., 3], alpha)


def test_visible_part_is_the_opaque_box_scaled_to_the_image():
    rgb = np.random.default_rng(0).random((60, 80, 3), dtype=np.float32)
    alpha = np.zeros((60, 80), np.float32)
    alpha[10:50, 20:70] = 1.0
    assert np.array_equal(visible_part(rgb, alpha), rgb[10:50, 20:70])
    big = np.repeat(np.repeat(rgb, 2, axis=0), 2, axis=1)  # a ×2 step: the box follows
    assert np.array_equal(visible_part(big, alpha), big[20:100, 40:140])
    assert visible_part(rgb, None) is rgb
    alpha[:] = 0
    alpha[5:8, 5:8] = 1.0  # a speck is no photo: judge the whole image
    assert visible_part(rgb, alpha) is rgb


def test_exif_orientation_is_applied(tmp_path, rgb8):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    Image.fromarray(rgb8).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    assert load_image(tmp_path / "rot.jpg").rgb.shape == (64, 48, 3)


def test_icc_profile_is_converted_to_srgb(tmp_path, rgb8):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(rgb8).save(tmp_path / "icc.png", icc_profile=srgb)
    img = load_image(tmp_path / "icc.png")
    assert "ICC profile converted to sRGB" in img.notes
    assert np.abs(img.rgb - rgb8 / 255).max() < 2 / 255  # sRGB → sRGB is (nearly) the identity
    Image.fromarray(rgb8).save(tmp_path / "badicc.png", icc_profile=b"not a profile")
    assert "unreadable" in " ".join(load_image(tmp_path / "badicc.png").notes)


def test_animated_file_gives_first_frame_with_a_note(tmp_path, rgb8):
    frames = [Image.fromarray(rgb8), Image.fromarray(255 - rgb8)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    img = load_image(tmp_path / "anim.gif")
    assert "2 frames: using the first" in img.notes
    assert abs(img.rgb.mean() - rgb8.mean() / 255) < 0.05


def test_decompression_bomb_limit_is_configurable(tmp_path, rgb8):
    Image.fromarray(rgb8).save(tmp_path / "x.png")
    with pytest.raises(ImageError, match="exceeds the limit"):
        load_image(tmp_path / "x.png", max_pixels=1000)
    assert load_image(tmp_path / "x.png", max_pixels=48 * 64).rgb.shape == (48, 64, 3)


@pytest.mark.parametrize(
    "data, message",
    [(b"", "empty"), (b"GIF89a-not-really", "not an image"), (b"hello", "not an image")],
)
def test_bad_files_give_clear_errors(tmp_path, data, message):
    (tmp_path / "bad").write_bytes(data)
    with pytest.raises(ImageError, match=message):
        load_image(tmp_path / "bad")


def test_truncated_png_is_reported(tmp_path, rgb8):
    buf = io.BytesIO()
    Image.fromarray(rgb8).save(buf, format="PNG")
    (tmp_path / "t.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(tmp_path / "t.png")


def test_save_png_never_overwrites_unasked(tmp_path, rgb8):
    target = tmp_path / "o.png"
    target.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        save_png(rgb8 / 255.0, target)
    assert target.read_bytes() == b"precious"
    save_png(rgb8 / 255.0, target, overwrite=True)
    assert Image.open(target).size == (64, 48)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_figures_are_saved_atomically_in_the_format_their_suffix_names(tmp_path, rgb8):
    from restoreagent.tools.util.files import atomic_save_image

    image = Image.fromarray(rgb8)
    png = atomic_save_image(image, tmp_path / "sheet.png")
    jpg = atomic_save_image(image, tmp_path / "sub" / "misses.JPG", quality=88)
    assert Image.open(png).format == "PNG" and np.array_equal(np.asarray(Image.open(png)), rgb8)
    assert Image.open(jpg).format == "JPEG"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["misses.JPG", "sheet.png"]  # no temp left
    assert png.stat().st_mode & 0o777 == 0o644
