"""Loaders: arrays, MNE Raw and an EDF file written in the test, into the segment format."""

import warnings

import numpy as np
import pytest
from scipy import signal

import seeg_embed as S

mne = pytest.importorskip("mne")

FS = 2048.0
NAMES = ["GPi-L1", "GPi-L2", "STN-R1", "VA-L1"]


def signals(seconds=4.0):
    t = np.arange(int(seconds * FS)) / FS
    rng = np.random.default_rng(0)
    x = np.stack([20 * np.sin(2 * np.pi * 20 * t) + 15 * np.sin(2 * np.pi * 700 * t),
                  10 * np.sin(2 * np.pi * 6 * t), rng.normal(0, 5, t.size),
                  8 * np.sin(2 * np.pi * 11 * t) + 30 * np.sin(2 * np.pi * 900 * t)])
    return x  # µV


def electrodes_tsv(path):
    path.write_text("name\tx\ty\tz\tregion\n"
                    "GPi-L1\t-19.5\t-5\t-3\tGPi\nGPi-L2\t-20\t-4.5\t-2\tGPi\n"
                    "STN-R1\t12\t-13\t-5\tSTN\nVA-L1\tn/a\tn/a\tn/a\tn/a\n")
    return path


def test_from_array_filters_resamples_and_reads_the_table(tmp_path):
    x = signals()
    rec = S.from_array(x, FS, NAMES, electrodes=electrodes_tsv(tmp_path / "e.tsv"),
                       subject="s1")
    assert rec.fs == 1000.0 and rec.data.shape == (4, 4000) and rec.data.dtype == np.float32
    f, p = signal.welch(rec.data, fs=1000.0, nperseg=1000, axis=-1)
    # the 20 Hz component survives with its power (A²/2 = 200 µV²); 700/900 Hz are gone
    assert p[0, (f >= 18) & (f <= 22)].sum() == pytest.approx(200.0, rel=0.05)
    assert rec.data[3].std() == pytest.approx(8 / np.sqrt(2), rel=0.05)
    assert rec.regions == ("GPi", "GPi", "STN", None)
    np.testing.assert_allclose(rec.coords[2], [12, -13, -5])
    assert np.isnan(rec.coords[3]).all()
    assert rec.subject == "s1" and rec.bad == {}


def test_bad_channels_are_flagged_and_excluded():
    x = signals()
    x[1] = 0.0
    x[2, 100] = np.nan
    with pytest.warns(UserWarning, match=r"excluding 2 bad channel\(s\): GPi-L2: all-zero "
                                         r"signal; STN-R1: 1 non-finite sample\(s\)"):
        rec = S.from_array(x, FS, NAMES)
    assert rec.ch_names == ("GPi-L1", "VA-L1")
    assert rec.bad == {"GPi-L2": "all-zero signal", "STN-R1": "1 non-finite sample(s)"}
    assert np.isfinite(rec.data).all()
    with pytest.raises(ValueError, match="every channel is bad"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        S.from_array(np.zeros((2, 5000)), FS, ["a", "b"])


def test_from_raw_and_edf_round_trip(tmp_path):
    x = signals()
    info = mne.create_info(NAMES, FS, "seeg")
    raw = mne.io.RawArray(x * 1e-6, info, verbose="error")
    raw.info["bads"] = ["VA-L1"]
    with pytest.warns(UserWarning, match="VA-L1: marked bad"):
        rec = S.from_raw(raw, electrodes=electrodes_tsv(tmp_path / "e.tsv"))
    ref = S.from_array(x[:3], FS, NAMES[:3])
    assert rec.ch_names == tuple(NAMES[:3]) and "VA-L1" in rec.bad
    np.testing.assert_allclose(rec.data, ref.data, rtol=1e-4, atol=1e-3)
    assert rec.regions == ("GPi", "GPi", "STN")
    # write an EDF with MNE (edfio), read it back through read_edf
    raw.info["bads"] = []
    path = tmp_path / "rec.edf"
    mne.export.export_raw(path, raw, overwrite=True, verbose="error")
    edf = S.read_edf(path, electrodes=electrodes_tsv(tmp_path / "e.tsv"))
    assert edf.ch_names == tuple(NAMES) and edf.fs == 1000.0
    full = S.from_array(x, FS, NAMES)
    # EDF stores 16-bit integers: agreement to a small fraction of the signal's scale
    np.testing.assert_allclose(edf.data, full.data, atol=0.02 * np.abs(full.data).max())
    segs = S.segment(edf, 1000, hop=500)
    assert segs.shape == (4, 7, 1000)
    np.testing.assert_array_equal(segs[:, 1], edf.data[:, 500:1500])


def test_read_electrodes_mapping_and_errors(tmp_path):
    table = S.read_electrodes({"a": {"region": "STN", "x": 1, "y": 2, "z": 3}})
    assert table == {"a": {"region": "STN", "xyz": (1.0, 2.0, 3.0)}}
    bad = tmp_path / "bad.csv"
    bad.write_text("label,x,y,z\na,1,2,3\n")
    with pytest.raises(ValueError, match="has no 'name' column"):
        S.read_electrodes(bad)
    bad.write_text("name,x,y,z\na,1,two,3\n")
    with pytest.raises(ValueError, match="coordinates of 'a' are not numbers"):
        S.read_electrodes(bad)
    with pytest.raises(FileNotFoundError, match="read_electrodes: no file at"):
        S.read_electrodes(tmp_path / "missing.tsv")


def test_bad_inputs(tmp_path):
    x = signals()
    with pytest.raises(ValueError, match=r"sampling rate 512.0 Hz is below twice the low-pass "
                                         r"cut-off \(500.0 Hz\)"):
        S.from_array(x, 512.0, NAMES)
    with pytest.raises(ValueError, match=r"recording is 4.000 s long, shorter than one segment "
                                         r"\(10.0 s\)"):
        S.from_array(x, FS, NAMES, min_duration_s=10.0)
    with pytest.raises(ValueError, match="recording has 4000 samples, shorter than one segment"):
        S.segment(S.from_array(x, FS, NAMES), 10_000)
    with pytest.raises(ValueError, match="duplicate channel names"):
        S.from_array(x, FS, ["a", "a", "b", "c"])
    with pytest.raises(ValueError, match="3 channel names for 4 channels"):
        S.from_array(x, FS, NAMES[:3])
    with pytest.raises(ValueError, match=r"bads \['zz'\] are not channel names"):
        S.from_array(x, FS, NAMES, bads=["zz"])
    with pytest.raises(TypeError, match="raw must be an mne.io.Raw"):
        S.from_raw(x)
    with pytest.raises(ValueError, match="expected a .edf or .bdf file"):
        (tmp_path / "x.fif").write_text("")
        S.read_edf(tmp_path / "x.fif")
    with pytest.raises(FileNotFoundError, match="read_edf: no file at"):
        S.read_edf(tmp_path / "none.edf")
