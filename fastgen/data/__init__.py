"""Data sets that exist offline on this machine, and readers for the standard files users hold.

Every loader raises :class:`DataError` (a ValueError) for missing or malformed data, with a message
naming the file and the problem and, for a missing data set, what to install.
"""
from .audio import (
    AUDIO_EXTENSIONS,
    SAMPLE_RATES,
    check_sample_rate,
    frames_for,
    load_wav,
    log_mel_spectrogram,
    mel_filterbank,
    mu_law_decode,
    mu_law_encode,
    read_wav,
    resample,
    write_wav,
)
from .binarize import BINARIZATION_MODES, BinarizedImages, binarization_protocol, binarize
from .captions import (
    TEMPLATES,
    VOCABULARY,
    MnistCaptions,
    decode_tokens,
    encode_caption,
    heldout_combinations,
    parse_caption,
)
from .cifar import CIFAR10_CLASSES, load_cifar10, read_cifar10_batch, write_cifar10_batch
from .download import DATASETS, download, ensure_mnist
from .errors import DataError
from .faces import LFW_FACES, lfw_faces_description, lfw_subset_path, load_lfw_faces
from .idx import read_idx, write_idx
from .image_patches import ImagePatches, load_image_patches, patch_split
from .splits import carve_description, carve_validation, subset_rows
from .mnist import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_ROOT,
    load_fashion_mnist,
    load_mnist,
    load_mnist_subset,
)
from .speech import (
    SpeechBatch,
    SpeechDataset,
    UnigramBaseline,
    Utterance,
    VOICES,
    Voice,
    load_wav_folder,
    synthesize_corpus,
    unigram_baseline,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "BINARIZATION_MODES",
    "BinarizedImages",
    "CIFAR10_CLASSES",
    "DATASETS",
    "DataError",
    "SAMPLE_RATES",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_ROOT",
    "ImagePatches",
    "MnistCaptions",
    "SpeechBatch",
    "SpeechDataset",
    "TEMPLATES",
    "UnigramBaseline",
    "Utterance",
    "VOCABULARY",
    "VOICES",
    "Voice",
    "binarization_protocol",
    "binarize",
    "carve_description",
    "carve_validation",
    "check_sample_rate",
    "decode_tokens",
    "download",
    "encode_caption",
    "ensure_mnist",
    "frames_for",
    "heldout_combinations",
    "load_cifar10",
    "load_fashion_mnist",
    "load_image_patches",
    "load_mnist",
    "load_mnist_subset",
    "load_wav",
    "load_wav_folder",
    "log_mel_spectrogram",
    "mel_filterbank",
    "mu_law_decode",
    "mu_law_encode",
    "parse_caption",
    "patch_split",
    "read_cifar10_batch",
    "read_idx",
    "read_wav",
    "resample",
    "subset_rows",
    "synthesize_corpus",
    "unigram_baseline",
    "write_cifar10_batch",
    "write_idx",
    "write_wav",
]
