"""Functional embeddings for multi-area SEEG/DBS recordings across subjects and sessions.

Javadzadeh, Soroushmojdehi, Mousavi, Asadi, Abe, Sanger. "Functional embeddings enable
aggregation of multi-area SEEG recordings over subjects and sessions."

A Siamese 1-D CNN learns, with a contrastive objective on same-region / different-region
pairs, a subject-agnostic embedding of each electrode from its local field potential; the
embeddings tokenize a channel-agnostic transformer that reconstructs masked channels over a
variable channel set. This package has a JAX simulator of multi-subject basal
ganglia–thalamic LFP, loaders for MNE ``Raw`` / EDF / BDF recordings, the encoder and its
losses and samplers, the transformer, and the evaluation measures.
"""

from seeg_embed.encoder import (
    SiameseEncoder,
    channel_embeddings,
    embed_segments,
    robust_standardize,
)
from seeg_embed.evaluate import (
    LinearBaseline,
    PairScores,
    accuracy_scores,
    cluster_agreement,
    fit_distance_threshold,
    fold_hemisphere,
    mean_of_others,
    nearest_centroid,
    pair_discrimination,
)
from seeg_embed.losses import contrastive_loss, pair_distance, supcon_loss
from seeg_embed.recording import (
    Recording,
    find_bad_channels,
    from_array,
    from_raw,
    read_edf,
    read_electrodes,
    segment,
)
from seeg_embed.sampling import (
    PairSampler,
    SegmentBank,
    make_pair_sampler,
    make_segment_bank,
    sample_labelled,
    sample_pairs,
)
from seeg_embed.simulate import (
    REGIONS,
    RHYTHMS,
    STATES,
    Cohort,
    RegionTable,
    SimConfig,
    default_regions,
    iter_session,
    make_cohort,
    simulate_blocks,
    simulate_session,
)
from seeg_embed.spectral import DEFAULT_BANDS, band_power, log_band_power, welch_psd
from seeg_embed.training import (
    ENCODER_LOSSES,
    ReconBatch,
    TrainState,
    init_train_state,
    make_encoder_step,
    make_transformer_step,
    merge_model,
)
from seeg_embed.transformer import (
    ChannelTransformer,
    Codebook,
    ReconOutput,
    check_masks,
    masked_reconstruction_loss,
    random_channel_mask,
    region_channel_mask,
)

__all__ = [
    # simulator
    "REGIONS",
    "RHYTHMS",
    "STATES",
    "Cohort",
    "RegionTable",
    "SimConfig",
    "default_regions",
    "iter_session",
    "make_cohort",
    "simulate_blocks",
    "simulate_session",
    # recordings
    "Recording",
    "find_bad_channels",
    "from_array",
    "from_raw",
    "read_edf",
    "read_electrodes",
    "segment",
    # spectra
    "DEFAULT_BANDS",
    "band_power",
    "log_band_power",
    "welch_psd",
    # encoder, losses, samplers
    "SiameseEncoder",
    "channel_embeddings",
    "embed_segments",
    "robust_standardize",
    "contrastive_loss",
    "pair_distance",
    "supcon_loss",
    "PairSampler",
    "SegmentBank",
    "make_pair_sampler",
    "make_segment_bank",
    "sample_labelled",
    "sample_pairs",
    # transformer
    "ChannelTransformer",
    "Codebook",
    "ReconOutput",
    "check_masks",
    "masked_reconstruction_loss",
    "random_channel_mask",
    "region_channel_mask",
    # training
    "ENCODER_LOSSES",
    "ReconBatch",
    "TrainState",
    "init_train_state",
    "make_encoder_step",
    "make_transformer_step",
    "merge_model",
    # evaluation
    "LinearBaseline",
    "PairScores",
    "accuracy_scores",
    "cluster_agreement",
    "fit_distance_threshold",
    "fold_hemisphere",
    "mean_of_others",
    "nearest_centroid",
    "pair_discrimination",
]
