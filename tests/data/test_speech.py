"""Speech corpus synthesis, WAV folders, the in-memory data set's crops and splits, the unigram baseline."""
from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from fastgen.data import (
    VOICES,
    DataError,
    SpeechDataset,
    frames_for,
    load_wav_folder,
    read_wav,
    synthesize_corpus,
    unigram_baseline,
    write_wav,
)
from tests.helpers import fresh_generator

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    out = tmp_path_factory.mktemp("corpus")
    return out, synthesize_corpus(out, n_utterances=5, progress=False)


@needs_espeak
def test_corpus_files_and_manifest(corpus):
    out, paths = corpus
    assert [p.name for p in paths] == [f"utt_{i:04d}.wav" for i in range(5)]
    manifest = json.loads((out / "corpus.json").read_text())
    assert manifest["settings"] == {"n_utterances": 5, "sample_rate": 16000, "seed": 0,
                                    "voices": [list(v) for v in VOICES]}
    assert [u["speaker"] for u in manifest["utterances"]] == [0, 1, 2, 3, 0]
    for path, u in zip(paths, manifest["utterances"]):
        assert u["file"] == path.name and u["text"]
        audio, rate = read_wav(path)
        assert rate == 16000 and 0.5 < audio.numel() / rate < 6 and audio.abs().max() > 0.1


@needs_espeak
def test_corpus_is_reused_and_redone_on_new_settings(corpus, tmp_path, monkeypatch):
    out, paths = corpus
    stamps = [p.stat().st_mtime_ns for p in paths]
    monkeypatch.setattr("fastgen.data.speech._espeak", lambda *a: pytest.fail("synthesised again"))
    assert synthesize_corpus(out, n_utterances=5, progress=False) == paths
    assert [p.stat().st_mtime_ns for p in paths] == stamps
    monkeypatch.undo()
    # Same seed, other settings: a fresh corpus; its texts are the same stream.
    small = synthesize_corpus(tmp_path, n_utterances=2, sample_rate=8000, progress=False)
    assert read_wav(small[0])[1] == 8000
    texts = [u["text"] for u in json.loads((tmp_path / "corpus.json").read_text())["utterances"]]
    assert texts == [u["text"] for u in json.loads((out / "corpus.json").read_text())["utterances"][:2]]
    synthesize_corpus(tmp_path, n_utterances=1, sample_rate=8000, progress=False)
    assert sorted(p.name for p in tmp_path.glob("*.wav")) == ["utt_0000.wav"]  # stale file removed


def test_missing_espeak_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr("fastgen.data.speech.shutil.which", lambda name: None)
    with pytest.raises(DataError, match="apt-get install espeak-ng"):
        synthesize_corpus(tmp_path, n_utterances=2, progress=False)


@needs_espeak
def test_dataset_from_corpus(corpus):
    out, paths = corpus
    ds = SpeechDataset.from_corpus(out)
    assert len(ds) == 5 and ds.num_speakers == len(VOICES) and ds.sample_rate == 16000
    assert ds.speakers.tolist() == [0, 1, 2, 3, 0]
    utt = ds[2]
    assert utt.tokens.numel() == read_wav(paths[2])[0].numel() and utt.speaker == 2
    assert utt.mels.shape == (80, frames_for(utt.tokens.numel(), 256))


def test_dataset_from_corpus_without_manifest(tmp_path):
    with pytest.raises(DataError, match="corpus.json"):
        SpeechDataset.from_corpus(tmp_path)


# --- WAV folders ---------------------------------------------------------------------------------

def _noise(n: int, gen: torch.Generator) -> torch.Tensor:
    return (torch.randn(n, generator=gen) * 0.3).clamp(-1, 1)


def test_load_wav_folder_recursive_sorted_resampled(tmp_path):
    gen = fresh_generator()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "deep").mkdir(parents=True)
    write_wav(tmp_path / "b" / "x.wav", _noise(2205, gen), 22050)
    write_wav(tmp_path / "a" / "deep" / "y.WAV", _noise(800, gen), 8000)
    write_wav(tmp_path / "z.wav", _noise(1600, gen), 16000)
    (tmp_path / "notes.txt").write_text("not audio")
    paths, waveforms = load_wav_folder(tmp_path, 16000)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == ["a/deep/y.WAV", "b/x.wav", "z.wav"]
    assert [w.numel() for w in waveforms] == [1600, 1600, 1600]


def test_load_wav_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_wav_folder(tmp_path / "missing", 16000)
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="no WAV files"):
        load_wav_folder(tmp_path, 16000)
    write_wav(tmp_path / "good.wav", torch.zeros(100), 16000)
    bad = tmp_path / "sub" / "bad.wav"
    bad.parent.mkdir()
    bad.write_bytes(b"RIFF\x00\x00")
    with pytest.raises(DataError, match=str(bad)):
        load_wav_folder(tmp_path, 16000)


def test_from_folder_speaker_folders(tmp_path):
    gen = fresh_generator()
    for speaker, n in (("p226", 2), ("p225", 1)):
        (tmp_path / speaker).mkdir()
        for i in range(n):
            write_wav(tmp_path / speaker / f"{i}.wav", _noise(600, gen), 16000)
    ds = SpeechDataset.from_folder(tmp_path, 16000, speaker_folders=True, hop_length=100, n_fft=400, n_mels=16)
    assert ds.speakers.tolist() == [0, 1, 1] and ds.num_speakers == 2
    assert SpeechDataset.from_folder(tmp_path, 16000, mels=False).speakers.tolist() == [0, 0, 0]
    write_wav(tmp_path / "loose.wav", _noise(600, gen), 16000)
    with pytest.raises(DataError, match="speaker subfolder"):
        SpeechDataset.from_folder(tmp_path, 16000, speaker_folders=True)


# --- SpeechDataset -------------------------------------------------------------------------------

HOP = 64


def _dataset(gen: torch.Generator, n_utts: int = 24, speakers: int = 3, **options) -> SpeechDataset:
    lengths = torch.randint(300, 2000, (n_utts,), generator=gen).tolist()
    waveforms = [_noise(n, gen) for n in lengths]
    options = {"n_fft": 256, "hop_length": HOP, "n_mels": 16, **options}
    return SpeechDataset(waveforms, [i % speakers for i in range(n_utts)], 16000, **options)


def test_crops_are_deterministic_and_aligned():
    gen = fresh_generator()
    ds = _dataset(gen)
    length = 5 * HOP
    batch = ds.crops(16, length, torch.Generator().manual_seed(7))
    again = ds.crops(16, length, torch.Generator().manual_seed(7))
    other = ds.crops(16, length, torch.Generator().manual_seed(8))
    assert torch.equal(batch.tokens, again.tokens) and torch.equal(batch.mels, again.mels)
    assert not torch.equal(batch.tokens, other.tokens)
    assert batch.tokens.shape == (16, length) and batch.tokens.dtype == torch.int64
    assert batch.mels.shape == (16, 16, 5) and batch.mels.is_contiguous()
    for tokens, speaker, mels in zip(batch.tokens, batch.speakers, batch.mels):
        # Find the crop in its utterance (random noise: a 320-token window is unique).
        hits = [(i, s) for i in range(len(ds)) if ds[i].tokens.numel() >= length
                for s in (ds[i].tokens.unfold(0, length, 1) == tokens).all(1).nonzero().flatten().tolist()]
        assert len(hits) == 1, f"seed {gen.initial_seed()}"
        i, start = hits[0]
        assert start % HOP == 0 and ds[i].speaker == speaker.item()
        torch.testing.assert_close(mels, ds[i].mels[:, start // HOP: start // HOP + 5], rtol=0, atol=0)


def test_crops_cover_all_aligned_starts():
    ds = SpeechDataset([_noise(3 * HOP + 10, fresh_generator())], [0], 16000, mels=False, hop_length=HOP)
    batch = ds.crops(400, HOP, torch.Generator().manual_seed(0))
    starts = {next(s for s in range(0, 3 * HOP + 10) if torch.equal(ds.tokens[s: s + HOP], t)) for t in batch.tokens}
    assert starts == {0, HOP, 2 * HOP}  # 3*HOP + HOP would run past the end


def test_crop_errors():
    ds = _dataset(fresh_generator())
    with pytest.raises(ValueError, match="multiple of hop_length"):
        ds.crops(2, HOP + 1)
    with pytest.raises(ValueError, match="no utterance"):
        ds.crops(2, 100 * HOP)
    plain = _dataset(fresh_generator(), mels=False)
    assert plain.crops(3, 17).tokens.shape == (3, 17) and plain.crops(3, 17).mels is None


def test_split_disjoint_stratified_seeded():
    gen = fresh_generator()
    ds = _dataset(gen, n_utts=30, speakers=3, mels=False)
    train, val, test = ds.split((0.8, 0.1, 0.1), seed=1)
    assert (len(train), len(val), len(test)) == (24, 3, 3)
    keys = [{tuple(part[i].tokens[:50].tolist()) for i in range(len(part))} for part in (train, val, test)]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    assert len(keys[0] | keys[1] | keys[2]) == 30
    for part in (train, val, test):
        assert torch.bincount(part.speakers).tolist() == [len(part) // 3] * 3  # each speaker in each split
        assert part.num_speakers == 3
    again = ds.split((0.8, 0.1, 0.1), seed=1)
    assert torch.equal(again[2].tokens, test.tokens)
    assert not torch.equal(ds.split((0.8, 0.1, 0.1), seed=2)[2].tokens, test.tokens)


def test_split_errors():
    ds = _dataset(fresh_generator(), n_utts=3, mels=False)
    with pytest.raises(ValueError, match="would be empty"):
        ds.split()
    with pytest.raises(ValueError, match="summing to 1"):
        ds.split((0.5, 0.1, 0.1))


def test_dataset_argument_errors():
    w = [torch.zeros(100)]
    with pytest.raises(ValueError, match="speaker ids"):
        SpeechDataset(w, [0, 1], 16000)
    with pytest.raises(ValueError, match="0..1"):
        SpeechDataset(w, [2], 16000, num_speakers=2)
    with pytest.raises(ValueError, match="no utterances"):
        SpeechDataset([], [], 16000)


# --- unigram baseline ----------------------------------------------------------------------------

def test_unigram_baseline_exact():
    base = unigram_baseline(torch.tensor([0, 0, 1]), torch.tensor([[0, 3]]), channels=4)
    probs = torch.tensor([3, 2, 1, 1], dtype=torch.float64) / 7
    torch.testing.assert_close(base.probs, probs.float())
    assert base.train_bits == pytest.approx(-(probs * probs.log2()).sum().item())
    assert base.test_bits == pytest.approx(-(math.log2(3 / 7) + math.log2(1 / 7)) / 2)


def test_unigram_baseline_uniform_tokens_cost_eight_bits():
    gen = fresh_generator()
    tokens = torch.randint(0, 256, (200_000,), generator=gen)
    base = unigram_baseline(tokens[:100_000], tokens[100_000:])
    assert base.train_bits == pytest.approx(8, abs=0.01) and base.test_bits == pytest.approx(8, abs=0.01)
    with pytest.raises(ValueError, match="0..255"):
        unigram_baseline(tokens, torch.tensor([256]))
