"""Config of the mgc suite: simulate scenes, train segmenters and every classifier, evaluate.

    python -m experiments.mgc.main --config=experiments/mgc/configs/default.py:quick \
        --workdir=/tmp/mgc_quick
    python -m experiments.mgc.main --config=experiments/mgc/configs/default.py:standard \
        --workdir=/tmp/mgc_standard
    python -m experiments.reproduce --tier standard --only mgc --workdir /tmp/mgc_reproduce

One run trains, for each of ``num_seeds`` seeds, a U-Net segmenter and the classifiers:
MGC with each mid-level fusion of ``fusions`` and each mask source of ``mask_sources``
(``true``: ground-truth masks; ``generated``: the segmenter's), MGC with early fusion (if
``fusions`` has it) with each of ``early_mask_sources``, the same-budget spectrogram CNN
(``baseline``) and the larger CNN (``large_cnn``), all on ``train_kind`` images, and
evaluates them on every transform of ``test_kinds``. Lists are comma-separated strings so
they can be overridden on the command line (``--config.fusions=concat,gated``).
Tiers: ``quick`` (a smoke run, minutes), ``standard`` (where the claims are judged, at most
an hour on 2 CPU cores), ``full`` (larger data and models, for a GPU). ``RULES`` and
``validate`` check every value before a run writes anything; a restart in the same workdir
may change only ``RESUME_ALLOW``.
"""

from experiments.config import ConfigError, comma_list, in_range, one_of, positive, tiered

# The names mgc.KINDS and mgc.FUSIONS define (kept literal so that loading a config does not
# import JAX; tests/mgc/test_experiments.py checks they agree).
KINDS = ("stft", "mel", "pcen", "logfreq")
FUSIONS = ("concat", "gated", "cross_attention", "early")

RULES = {
    "num_seeds": positive, "data.train_clips": positive, "data.test_clips": positive,
    "data.chunk": positive, "data.n_bins": positive, "data.n_frames": positive,
    "train_kind": one_of(*KINDS), "test_kinds": comma_list(*KINDS),
    "fusions": comma_list(*FUSIONS), "mask_sources": comma_list("true", "generated"),
    "early_mask_sources": comma_list("true", "generated"),
    "segmenter.width": positive, "segmenter.steps": positive,
    "segmenter.batch_size": positive, "segmenter.learning_rate": positive,
    "classifier.width": positive, "classifier.large_width": positive,
    "classifier.steps": positive, "classifier.batch_size": positive,
    "classifier.learning_rate": positive, "classifier.weight_decay": in_range(0.0, 1.0),
    "chunk_steps": positive, "eval.recall": in_range(0.0, 1.0, closed=False),
    "eval.bootstrap": positive,
}

# Each (model, seed) is stored when finished and the summary is recomputed from the stored
# records, so only how the summary is computed may change on a restart: the number of
# bootstrap resamples, and more seeds (the finished seeds stay as they are).
RESUME_ALLOW = ("num_seeds", "eval.bootstrap")


def _items(value) -> list[str]:
    return [v.strip() for v in str(value).split(",") if v.strip()]


def validate(config) -> None:
    """Checks across keys (``RULES`` checks each value on its own)."""
    if config.train_kind not in _items(config.test_kinds):
        raise ConfigError(f"config.train_kind={config.train_kind!r} must be one of "
                          f"config.test_kinds={_items(config.test_kinds)}")
    if config.data.snr_high < config.data.snr_low:
        raise ConfigError(f"config.data.snr_high must be >= config.data.snr_low, got "
                          f"{config.data.snr_high} < {config.data.snr_low}")
    for name in ("segmenter", "classifier"):
        if config[name].steps % config.chunk_steps:
            raise ConfigError(f"config.{name}.steps={config[name].steps} must be a multiple "
                              f"of config.chunk_steps={config.chunk_steps}")
    try:
        edges = [float(e) for e in _items(config.eval.snr_edges)]
    except ValueError:
        edges = []
    if len(edges) < 2 or any(b <= a for a, b in zip(edges[:-1], edges[1:], strict=True)):
        raise ConfigError(f"config.eval.snr_edges must be >= 2 increasing numbers, got "
                          f"{config.eval.snr_edges!r}")


def get_config(variant=None):
    base = {
        "seed": 0,
        "num_seeds": 3,
        "data": {
            "train_clips": 1800,
            "test_clips": 900,
            "chunk": 60,  # clips simulated per jitted call
            "snr_low": -12.0,  # in-band SNR range of the calls, dB
            "snr_high": 6.0,
            "n_bins": 64,
            "n_frames": 64,
        },
        "train_kind": "stft",
        "test_kinds": "stft,mel,pcen,logfreq",
        "fusions": "concat,gated,cross_attention,early",
        "mask_sources": "true,generated",
        # Early fusion (channel stacking) is the comparison architecture; at the standard
        # tier it is trained with true masks only, to fit the hour (see below).
        "early_mask_sources": "true",
        "segmenter": {"width": 12, "steps": 250, "batch_size": 32, "learning_rate": 2e-3},
        "classifier": {
            "width": 8,  # MGC encoders; the baseline's width is matched to its budget
            "large_width": 16,
            "steps": 300,
            "batch_size": 32,
            "learning_rate": 2e-3,
            "weight_decay": 1e-4,
        },
        "chunk_steps": 50,  # steps per compiled chunk (progress and checkpoints between)
        "eval": {
            "low_snr_max": -6.0,  # call clips below this SNR are the low-SNR positives
            "recall": 0.8,  # FPR on noise-only clips at this recall on low-SNR calls
            "snr_edges": "-12,-6,0,6",
            "bootstrap": 1000,
        },
    }
    tiers = {
        "quick": {  # a smoke run of every stage within 3 minutes on 2 cores: one fusion,
            # generated masks only, so 3 classifiers instead of 10
            "num_seeds": 1,
            "fusions": "concat",
            "mask_sources": "generated",
            "data.train_clips": 240,
            "data.test_clips": 120,
            "segmenter.steps": 20,
            "classifier.steps": 40,
            "chunk_steps": 20,
            "eval.bootstrap": 100,
        },
        # Sized on the idle 2-core machine (2026-12-02, `python -m experiments.mgc.bench
        # --which=training`): s/step 0.97 segmenter, 0.16-0.17 mid-level MGC and same-budget
        # CNN, 0.25 early fusion, 0.48 larger CNN; the data take ~3 min. The first sizing
        # (segmenter 300 and classifiers 500 steps, early fusion with both mask sources)
        # came to ~71 min, so before its first run the standard tier was cut to 250/300
        # steps and early fusion with true masks only: ~15 min per seed, ~47 min in all.
        "standard": {},
        "full": {
            "num_seeds": 5,
            "data.train_clips": 30000,
            "data.test_clips": 6000,
            "data.n_bins": 128,
            "segmenter.width": 32,
            "segmenter.steps": 5000,
            "classifier.width": 32,
            "classifier.large_width": 64,
            "classifier.steps": 20000,
            "classifier.batch_size": 64,
            "early_mask_sources": "true,generated",
            "chunk_steps": 500,
        },
    }
    return tiered(base, tiers, variant)
