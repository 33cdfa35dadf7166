"""The WAV/FLAC folder loader on files written in the test."""

import csv

import numpy as np
import pytest
import scipy.signal

import mgc

sf = pytest.importorskip("soundfile")


def write(path, x, sr, subtype=None):
    sf.write(str(path), x, sr, subtype=subtype)
    return path.name


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    a = (0.3 * rng.standard_normal(48000 * 3)).astype(np.float32)  # 3 s at 48 kHz
    b = (0.3 * rng.standard_normal((44100 * 2, 2))).astype(np.float32)  # stereo, 44.1 kHz
    write(tmp_path / "a.wav", a, 48000, "FLOAT")
    write(tmp_path / "b.flac", b, 44100)
    rows = [{"file": "a.wav", "label": "whale", "start": "0.5", "end": "2.75"},
            {"file": "b.flac", "label": "noise", "start": "", "end": ""}]
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "label", "start", "end"])
        w.writeheader()
        w.writerows(rows)
    return tmp_path, a, sf.read(str(tmp_path / "b.flac"))[0]


def test_windows_equal_whole_file_resampling(folder):
    root, a, b = folder
    loader = mgc.AudioFolder(root, root / "labels.csv", sample_rate=32000, window_s=0.5,
                             hop_s=0.25, max_frequency=16000)
    assert loader.classes == ("noise", "whale")
    wins = list(loader.windows())
    # a: segment 0.5-2.75 s -> starts 0.5, 0.75, ..., 2.25 (8); b: 0-2 s -> 7 windows
    assert [w.path.name for w in wins].count("a.wav") == 8
    assert [w.path.name for w in wins].count("b.flac") == 7
    assert len(loader) == 15
    ra = scipy.signal.resample_poly(a.astype(np.float64), 2, 3)
    rb = scipy.signal.resample_poly(b.mean(axis=1), 320, 441)
    for w in wins:
        ref = ra if w.path.name == "a.wav" else rb
        k0 = int(round(w.start * 32000))
        assert w.audio.shape == (16000,) and w.audio.dtype == np.float32
        np.testing.assert_allclose(w.audio, ref[k0:k0 + 16000], atol=2e-6)
        assert w.label == (1 if w.path.name == "a.wav" else 0)


def test_batches_and_streaming_reads_one_window_at_a_time(folder, monkeypatch):
    root, _, _ = folder
    loader = mgc.AudioFolder(root, root / "labels.csv", sample_rate=32000, window_s=0.5)
    sizes = []
    original = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        sizes.append(frames)
        return original(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    batches = list(loader.batches(3))
    assert [x.shape for x, _, _ in batches] == [(3, 16000), (3, 16000), (2, 16000)]
    np.testing.assert_array_equal(np.concatenate([y for _, y, _ in batches]),
                                  [1, 1, 1, 1, 0, 0, 0, 0])
    # every read is one window (at 48 kHz: 24000 frames) plus the resampling margin
    assert len(sizes) == 8 and 0 < max(sizes) < 24000 + 2000


def test_channel_selection(folder):
    root, _, b = folder
    loader = mgc.AudioFolder(root, [{"file": "b.flac", "label": "x"}], sample_rate=44100,
                             window_s=1.0, channel=1)
    w = next(iter(loader.windows()))
    np.testing.assert_allclose(w.audio, b[:44100, 1], atol=1e-6)


def test_empty_and_silent_files_are_reported_and_skipped(folder):
    root, _, _ = folder
    write(root / "empty.wav", np.zeros(0, np.float32), 48000)
    write(root / "silent.wav", np.zeros(48000, np.float32), 48000)
    table = [{"file": "a.wav", "label": "whale"}, {"file": "empty.wav", "label": "whale"},
             {"file": "silent.wav", "label": "whale"}]
    with pytest.warns(UserWarning, match="empty.wav: empty file"):
        loader = mgc.AudioFolder(root, table, sample_rate=48000, window_s=0.5)
    with pytest.warns(UserWarning, match="silent.wav: silent"):
        wins = list(loader.windows())
    assert {w.path.name for w in wins} == {"a.wav"} and len(wins) == 6
    assert [(p.name, r.split(":")[0]) for p, r in loader.skipped] == [
        ("empty.wav", "empty file (0 samples)"), ("silent.wav", "silent")]


def test_bad_inputs(folder):
    root, _, _ = folder
    with pytest.raises(FileNotFoundError, match="1 file\\(s\\) named in table do not exist .*: "
                                                "missing.wav"):
        mgc.AudioFolder(root, [{"file": "missing.wav", "label": "x"}], sample_rate=16000,
                        window_s=0.5)
    with pytest.raises(ValueError, match="b.flac is recorded at 44100 Hz, below twice the "
                                         "requested band's upper edge 45000"):
        mgc.AudioFolder(root, [{"file": "b.flac", "label": "x"}], sample_rate=96000,
                        window_s=0.5, max_frequency=45000)
    with pytest.raises(ValueError, match="window_s=5.0 s is longer than the recording b.flac"):
        mgc.AudioFolder(root, [{"file": "b.flac", "label": "x"}], sample_rate=16000,
                        window_s=5.0)
    with pytest.raises(ValueError, match="longer than the segment a.wav"):
        mgc.AudioFolder(root, [{"file": "a.wav", "label": "x", "start": 1.0, "end": 1.2}],
                        sample_rate=16000, window_s=0.5)
    with pytest.raises(ValueError, match="end \\(1.0 s\\) must be after start \\(2.0 s\\)"):
        mgc.read_labels([{"file": "a.wav", "label": "x", "start": 2.0, "end": 1.0}], root)
    with pytest.raises(ValueError, match="runs past the file's end"):
        mgc.AudioFolder(root, [{"file": "a.wav", "label": "x", "start": 1.0, "end": 9.0}],
                        sample_rate=16000, window_s=0.5)
    with pytest.raises(ValueError, match="labels \\['x'\\] are not in classes"):
        mgc.AudioFolder(root, [{"file": "a.wav", "label": "x"}], sample_rate=16000,
                        window_s=0.5, classes=["whale"])
    with pytest.raises(ValueError, match="lacks column\\(s\\) \\['label'\\]"):
        mgc.read_labels([{"file": "a.wav"}], root)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        next(mgc.AudioFolder(root, [{"file": "a.wav", "label": "x"}], sample_rate=16000,
                             window_s=0.5).batches(0))
    nan = np.zeros(48000, np.float32)
    nan[30000] = np.nan
    write(root / "nan.wav", nan, 48000, "FLOAT")
    loader = mgc.AudioFolder(root, [{"file": "nan.wav", "label": "x"}], sample_rate=48000,
                             window_s=0.25)
    with pytest.raises(ValueError, match="nan.wav holds NaN or inf audio \\(first at sample "
                                         "30000, 0.625 s\\)"):
        list(loader.windows())
