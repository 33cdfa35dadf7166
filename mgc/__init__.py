"""Mask-guided multi-representation classification of underwater bioacoustic signals.

Razig, Soulaymani, Benabbou, Cauchy: *Multi-Representation Attention Framework for
Underwater Bioacoustic Denoising and Recognition*. Mask-Guided Classification (MGC)
segments spectrograms into soft masks of biological energy with a U-Net, then fuses mask
and spectrogram embeddings at mid level (``concat``, ``gated``, ``cross_attention``; or
``early`` channel stacking) to classify calls, and is meant to keep its accuracy on
spectrograms made by another transform.

The package holds JAX acoustic front-ends (STFT, mel, PCEN, a pseudo-constant-Q
log-frequency transform; jittable, batched, checked against librosa and SciPy), multi-band
spectrogram images with ground-truth soft masks, a marine scene simulator (whistles, click
trains, humpback units, blue/fin and minke calls in ship, rain, shrimp and flow noise at a
controlled SNR), a streaming WAV/FLAC folder loader, the Flax NNX models, losses, a
seed-batched training loop and the evaluation metrics.
"""

from mgc.audio import AudioFolder, Segment, Window, read_labels
from mgc.frontends import (
    amplitude_to_db,
    constant_q_frequencies,
    decimate,
    fft_frequencies,
    frame_count,
    hz_to_mel,
    linear_filterbank,
    logfreq_filterbank,
    logfreq_spectrogram,
    lowpass_taps,
    mel_filterbank,
    mel_frequencies,
    mel_to_hz,
    melspectrogram,
    pcen,
    pcen_smoothing_coefficient,
    power_to_db,
    spectrogram,
    stft,
)
from mgc.metrics import (
    accuracy,
    bootstrap_ci,
    confusion_matrix,
    false_positive_rate,
    fpr_at_recall,
    macro_f1,
    per_snr_accuracy,
)
from mgc.models import (
    FUSIONS,
    Encoder,
    MGCClassifier,
    SpectrogramCNN,
    UNet,
    count_params,
    depth_to_space,
    large_cnn,
    matched_width,
    space_to_depth,
    standardize,
)
from mgc.representation import (
    KINDS,
    Band,
    Frontend,
    band_powers,
    compress,
    default_frontend,
    representation,
    representations_with_masks,
)
from mgc.simulate import (
    CALL_CLASSES,
    CLASSES,
    NOISE_TYPES,
    Scene,
    SceneConfig,
    class_band,
    render_calls,
    render_noise,
    simulate_scenes,
)
from mgc.training import (
    classification_loss,
    init_params,
    make_optimizer,
    make_predict,
    make_train_chunk,
    predict,
    segmentation_loss,
    soft_dice_loss,
)

__all__ = [
    "CALL_CLASSES",
    "CLASSES",
    "FUSIONS",
    "KINDS",
    "NOISE_TYPES",
    "AudioFolder",
    "Band",
    "Encoder",
    "Frontend",
    "MGCClassifier",
    "Scene",
    "SceneConfig",
    "Segment",
    "SpectrogramCNN",
    "UNet",
    "Window",
    "accuracy",
    "amplitude_to_db",
    "band_powers",
    "bootstrap_ci",
    "class_band",
    "classification_loss",
    "compress",
    "confusion_matrix",
    "constant_q_frequencies",
    "count_params",
    "decimate",
    "default_frontend",
    "depth_to_space",
    "false_positive_rate",
    "fft_frequencies",
    "fpr_at_recall",
    "frame_count",
    "hz_to_mel",
    "init_params",
    "large_cnn",
    "linear_filterbank",
    "logfreq_filterbank",
    "logfreq_spectrogram",
    "lowpass_taps",
    "macro_f1",
    "make_optimizer",
    "make_predict",
    "make_train_chunk",
    "matched_width",
    "mel_filterbank",
    "mel_frequencies",
    "mel_to_hz",
    "melspectrogram",
    "pcen",
    "pcen_smoothing_coefficient",
    "per_snr_accuracy",
    "power_to_db",
    "predict",
    "read_labels",
    "render_calls",
    "render_noise",
    "representation",
    "representations_with_masks",
    "segmentation_loss",
    "simulate_scenes",
    "soft_dice_loss",
    "space_to_depth",
    "spectrogram",
    "standardize",
    "stft",
]
