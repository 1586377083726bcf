"""Inputs that used to exhaust memory before any check (issue 11, items 5 and 6): WAV headers with
absurd sample rates, resampling to more samples than fit, and gzip IDX files that expand far beyond
what their header promises. The memory cases run in a subprocess under an address-space limit
(tests/memory_limit.py), so a regression fails fast instead of exhausting the machine."""
from __future__ import annotations

import gzip
import struct
import wave

import numpy as np
import pytest
import torch

from fastgen.data import SAMPLE_RATES, DataError, read_idx, read_wav, resample
from fastgen.data import audio
from tests.memory_limit import expect_error


def _wav(path, rate: int, frames: int = 20_000) -> None:
    """A 16-bit mono WAV whose header says ``rate`` Hz (write_wav would refuse none of these, but the
    stdlib writer is what a damaged header looks like)."""
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(np.random.default_rng(0).integers(-3000, 3000, frames, dtype="<i2").tobytes())


@pytest.mark.parametrize("rate", [1, SAMPLE_RATES[0] - 1, SAMPLE_RATES[1] + 1, 4_000_000])
def test_read_wav_rejects_sample_rates_outside_the_range(tmp_path, rate):
    path = tmp_path / "odd.wav"
    _wav(path, rate)
    with pytest.raises(DataError) as info:
        read_wav(path)
    message = str(info.value)
    assert str(path) in message and f"sample rate {rate:,} Hz" in message and "1,000..384,000" in message


@pytest.mark.parametrize("rate", SAMPLE_RATES)
def test_read_wav_accepts_the_ends_of_the_range(tmp_path, rate):
    _wav(tmp_path / "ok.wav", rate, frames=100)
    audio_, got = read_wav(tmp_path / "ok.wav")
    assert got == rate and audio_.shape == (100,)


def test_a_40kb_wav_at_1hz_in_a_folder_fails_before_resampling(tmp_path):
    # Was: resampled x16,000 to 320M samples (20.7 GB RSS). Under the 2 GB limit that is a MemoryError.
    folder = tmp_path / "wavs"
    folder.mkdir()
    _wav(folder / "a.wav", 1)
    expect_error(f"""
        from fastgen.data import load_wav_folder
        load_wav_folder({str(folder)!r}, 16000)
        """, "DataError", "a.wav", "sample rate 1 Hz")


def test_resample_refuses_an_output_beyond_memory_before_allocating():
    # 3M samples from 1 kHz to 384 kHz: 1.15G samples out, 4.6 GB, over the subprocess's 2 GB.
    message = expect_error("""
        import torch
        from fastgen.data import resample
        resample(torch.zeros(3_000_000), 1000, 384000)
        """, "ValueError", "resampling 3,000,000 samples from 1,000 to 384,000 Hz", "GB of memory")
    assert "more than this process can have (2.15 GB)" in message  # the limit is the RLIMIT_AS cap


def test_load_wav_names_the_file_when_the_resampled_audio_cannot_fit(tmp_path, monkeypatch):
    path = tmp_path / "a.wav"
    _wav(path, 1000, frames=1000)
    monkeypatch.setattr("fastgen.memory._physical_memory", lambda: 1 << 20)  # a 1 MB machine
    with pytest.raises(DataError) as info:
        audio.load_wav(path, 384_000)
    assert str(path) in str(info.value) and "of memory" in str(info.value)


@pytest.mark.parametrize("rates", [(44_100, 16_000), (16_000, 22_050), (384_000, 16_000)], ids=str)
def test_resample_in_chunks_matches_one_product(monkeypatch, rates):
    """The window copy is bounded by computing a bounded number of output blocks per product; tiny
    chunks (many per phase, a ragged last one) must give the one-product result."""
    x = torch.randn(2, 4_001, dtype=torch.float64)
    whole = resample(x, *rates)
    monkeypatch.setattr(audio, "_RESAMPLE_CHUNK", 1)  # one block per product
    chunked = resample(x, *rates)
    torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-12)


# --- IDX ------------------------------------------------------------------------------------------

def _header(dims, code=0x08) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def _zeros_members(total: int, member: int = 1 << 24) -> bytes:
    """gzip members that decompress to ``total`` zero bytes, in a few KB (gzip readers concatenate members)."""
    return gzip.compress(bytes(member)) * (total // member)


def test_gzip_bomb_after_a_small_header_stops_at_the_promised_payload(tmp_path):
    # 10 images of 28x28 promised, then 3.2 GB of zeros: was decompressed whole (6.5 GB for 3 MB).
    path = tmp_path / "bomb-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_header((10, 28, 28)) + bytes(7840)) + _zeros_members(200 << 24))
    assert path.stat().st_size < 4 << 20
    expect_error(f"from fastgen.data import read_idx; read_idx({str(path)!r})",
                 "DataError", "trailing bytes after payload", "7840 payload bytes")


def test_gzip_of_zeros_fails_at_its_header(tmp_path):
    path = tmp_path / "zeros.gz"
    path.write_bytes(_zeros_members(200 << 24))
    expect_error(f"from fastgen.data import read_idx; read_idx({str(path)!r})", "DataError", "dtype code 0x00")


def test_gzip_header_promising_more_than_memory(tmp_path):
    path = tmp_path / "huge.gz"
    path.write_bytes(gzip.compress(_header((100_000, 100_000, 1000)) + bytes(100)))
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(path) in str(info.value) and "TB of memory" in str(info.value)


def test_plain_header_promising_more_than_the_file_holds(tmp_path):
    path = tmp_path / "huge"
    path.write_bytes(_header((100_000, 100_000, 1000)) + bytes(100))
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert "truncated payload" in str(info.value) and "file has 100" in str(info.value)


def test_gzip_trailing_and_missing_bytes(tmp_path):
    payload = np.arange(24, dtype=np.uint8).tobytes()
    longer, shorter = tmp_path / "long.gz", tmp_path / "short.gz"
    longer.write_bytes(gzip.compress(_header((2, 3, 4)) + payload + b"\x00"))
    shorter.write_bytes(gzip.compress(_header((2, 3, 4)) + payload[:-1]))
    with pytest.raises(DataError, match="trailing bytes after payload"):
        read_idx(longer)
    with pytest.raises(DataError, match="truncated payload.*file has 23"):
        read_idx(shorter)
