"""Channel-model figures and numbers: writes PNGs and a JSON summary to bench/results/.

* channel_heff.png: |h_eff[d, m]| read off a pilot-only demo frame sent through the emulator
  (one Vehicular-A realisation, 220 km/h at 4 GHz), true path positions marked.
* channel_doppler_spectrum.png: the Doppler spectrum of the single-Doppler model (path
  Dopplers over many realisations) and of the Jakes model (averaged periodogram of h(t)),
  against Clarke's U-shaped density 1/(pi nu_max sqrt(1 - (f/nu_max)^2)).
* channel_fractional_delay.png: NMSE of the emulator's delay against the exact band-limited
  delay versus the filter half-length K (measured and theory, ideal band and roll-off 0.25).
* channel_plots.json: the numbers behind them and the emulator's CPU throughput.

Run: ``python bench/channel_plots.py [--out bench/results] [--seed 1]``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import zakotfs  # noqa: E402
from channel_models import (DEFAULT_HALF_LEN, ChannelEmulator, PathSet, apply_channel,  # noqa: E402
                            circular_delay_response, doppler_from_speed, draw_paths,
                            fractional_delay_nmse, load_profile)

SPEED_KMH, FC_HZ = 220.0, 4e9


def heff_readoff(config: zakotfs.FrameConfig, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model-free read-off (spec): h_eff[d, m] = y_qp[k_p + d, l_p + m] e^{-j2pi m k_p/(MN)} / a_p
    for d in the guard window and m in [-N/2, N/2). Returns (delays, dopplers, h [D, Md])."""
    M, N = config.M, config.N
    delays = np.arange(-config.guard_neg, config.guard_pos + 1)
    dopplers = np.arange(-(N // 2), N - N // 2)
    k = config.pilot_k + delays                      # inside [0, M): no quasi-periodic wrap
    l = (config.pilot_l + dopplers) % N
    twist = np.exp(-2j * np.pi * dopplers * config.pilot_k / (M * N))
    return delays, dopplers, y[np.ix_(k, l)] * twist[None, :] / config.pilot_amplitude


def figure_heff(rng: np.random.Generator, out: Path) -> dict:
    config = zakotfs.preset("demo")
    nu_max = doppler_from_speed(SPEED_KMH, FC_HZ)
    paths = draw_paths(load_profile("veh-a"), nu_max, rng)
    frame = zakotfs.add_cp(zakotfs.inverse_zak(zakotfs.pilot_grid(config)), config.cp_len)
    r = apply_channel(paths, frame.astype(np.complex64), config.bandwidth)
    t0 = config.cp_len
    y = zakotfs.zak(r[t0:t0 + config.MN].astype(np.complex128), config.M, config.N)
    delays, dopplers, h = heff_readoff(config, y)
    truth = paths.at_frame(t0, config.bandwidth)
    d_true = truth.delay
    m_true = truth.doppler[:, 0] * config.MN

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [2, 1]})
    db = 20 * np.log10(np.abs(h) + 1e-12)
    im = ax.imshow(db.T, origin="lower", aspect="auto", cmap="viridis", vmin=db.max() - 50, vmax=db.max(),
                   extent=[delays[0] - 0.5, delays[-1] + 0.5, dopplers[0] - 0.5, dopplers[-1] + 0.5])
    ax.scatter(d_true, m_true, s=40 + 400 * np.abs(truth.amp[:, 0]) ** 2, facecolors="none",
               edgecolors="red", label="true paths (delay tau B, Doppler nu T)")
    ax.set_xlabel("delay bin d (samples)")
    ax.set_ylabel("Doppler bin m")
    ax.set_title(f"|h_eff[d, m]| read off a pilot-only frame\nVeh-A, {SPEED_KMH:g} km/h at "
                 f"{FC_HZ / 1e9:g} GHz (nu_max = {nu_max:.0f} Hz = {nu_max * config.frame_time:.2f} bins), "
                 f"{config.M}x{config.N}, {config.bandwidth / 1e6:g} MHz")
    ax.set_xlim(-16.5, min(delays[-1], 60) + 0.5)
    ax.legend(loc="upper right", fontsize=8)
    fig.colorbar(im, ax=ax, label="dB")
    ax2.plot(delays, 10 * np.log10(np.sum(np.abs(h) ** 2, axis=1) + 1e-12), ".-", label="sum over Doppler")
    for d, a in zip(d_true, np.abs(truth.amp[:, 0]) ** 2):
        ax2.axvline(d, color="red", alpha=0.3)
        ax2.plot(d, 10 * np.log10(a), "rv")
    ax2.set_xlim(-16, min(delays[-1], 60))
    ax2.set_xlabel("delay bin d")
    ax2.set_ylabel("energy (dB)")
    ax2.set_title("delay profile of h_eff (red: |h_i|^2)")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "channel_heff.png", dpi=110)
    plt.close(fig)
    inside = np.sum(np.abs(h) ** 2)
    return {"config": config.name, "nu_max_hz": nu_max, "doppler_bins_max": nu_max * config.frame_time,
            "paths_delay_samples": d_true.tolist(), "paths_doppler_bins": m_true.tolist(),
            "paths_power": (np.abs(truth.amp[:, 0]) ** 2).tolist(),
            "heff_energy_in_guard_window": float(inside),
            "channel_energy": float(np.sum(np.abs(truth.amp) ** 2))}


def figure_doppler(rng: np.random.Generator, out: Path) -> dict:
    nu_max = doppler_from_speed(SPEED_KMH, FC_HZ)
    profile = load_profile("veh-a")
    single = np.concatenate([draw_paths(profile, nu_max, rng).dopplers_hz[:, 0] for _ in range(20000)])

    fs, n_t, n_real = 8 * nu_max, 2048, 400                   # periodogram of h(t), 0.4 Hz bins
    t = np.arange(n_t) / fs
    window = np.hanning(n_t)
    psd = np.zeros(n_t)
    one = load_profile("veh-a")
    for _ in range(n_real):
        h = draw_paths(one, nu_max, rng, doppler_model="jakes", n_sinusoids=16).gains(t)
        psd += np.sum(np.abs(np.fft.fft(h * window, axis=-1)) ** 2, axis=0)
    freq = np.fft.fftshift(np.fft.fftfreq(n_t, 1 / fs))
    psd = np.fft.fftshift(psd)
    psd /= np.sum(psd) * (freq[1] - freq[0])                  # unit area (Hz^-1)

    x = np.linspace(-0.999, 0.999, 801) * nu_max
    clarke = 1 / (np.pi * nu_max * np.sqrt(1 - (x / nu_max) ** 2))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.hist(single, bins=80, range=(-nu_max * 1.05, nu_max * 1.05), density=True, alpha=0.45,
            label=f"single Doppler per path: nu_max cos(theta), {single.size} paths")
    ax.plot(freq, psd, lw=1.2, label=f"Jakes (16 sinusoids): averaged periodogram, {n_real} realisations")
    ax.plot(x, clarke, "k--", lw=1.2, label="Clarke: 1 / (pi nu_max sqrt(1 - (f/nu_max)^2))")
    ax.set_xlim(-1.3 * nu_max, 1.3 * nu_max)
    ax.set_ylim(0, 8 / (np.pi * nu_max))
    ax.set_xlabel("Doppler frequency (Hz)")
    ax.set_ylabel("density (1/Hz)")
    ax.set_title(f"Doppler spectrum, nu_max = {nu_max:.1f} Hz ({SPEED_KMH:g} km/h at {FC_HZ / 1e9:g} GHz)")
    ax.legend(fontsize=8, loc="upper center")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "channel_doppler_spectrum.png", dpi=110)
    plt.close(fig)
    inside = np.abs(freq) <= nu_max * 1.01
    return {"nu_max_hz": nu_max,
            "single_max_abs_doppler_over_nu_max": float(np.max(np.abs(single)) / nu_max),
            "jakes_psd_fraction_within_nu_max": float(np.sum(psd[inside]) * (freq[1] - freq[0]))}


def measured_nmse(half_len: int, delay: float, rolloff: float | None, rng: np.random.Generator) -> float:
    """Emulator vs exact band-limited delay on a periodic white signal (period >= 64 K) with a
    flat spectrum (|S[k]| = 1, random phases): the band-averaged error, free of Monte-Carlo spread."""
    B = 10e6
    period = max(1 << 17, 64 * half_len)
    spectrum = np.exp(2j * np.pi * rng.uniform(size=period))
    one = (np.fft.ifft(spectrum) * math.sqrt(period)).astype(np.complex64)
    out = apply_channel(PathSet([delay / B], [1.0], [0.0]), np.tile(one, 3), B, half_len=half_len,
                        tx_rx_filter=rolloff)[period:2 * period]
    response = circular_delay_response(period, delay, rolloff or 0.0)
    exact = np.fft.ifft(np.fft.fft(one.astype(complex)) * response)
    return float(10 * np.log10(np.sum(np.abs(out - exact) ** 2) / np.sum(np.abs(exact) ** 2)))


def figure_fractional_delay(rng: np.random.Generator, out: Path) -> dict:
    delay = 3.5                                           # worst fractional part
    ks = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
    ideal = [measured_nmse(k, delay, None, rng) for k in ks]
    ideal_theory = [10 * math.log10(fractional_delay_nmse(delay, k)) for k in ks]
    ks_ro = [4, 8, 16, 32, 64, 128, 256]
    rolled = [measured_nmse(k, delay, 0.25, rng) for k in ks_ro]
    rolled_theory = [10 * math.log10(fractional_delay_nmse(delay, k, rolloff=0.25)) for k in ks_ro]

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    ax.semilogx(ks, ideal, "o-", label="ideal band limit: emulator (measured)")
    ax.semilogx(ks, ideal_theory, "k--", lw=1, label="ideal band limit: sinc tail (theory)")
    ax.semilogx(ks_ro, rolled, "s-", label="band edge roll-off 0.25: emulator (measured)")
    ax.semilogx(ks_ro, rolled_theory, "k:", lw=1, label="roll-off 0.25: kernel tail (theory)")
    ax.axhline(-40, color="red", lw=0.8, label="-40 dB target")
    ax.axvline(DEFAULT_HALF_LEN, color="grey", lw=0.8, ls="-.", label=f"default K = {DEFAULT_HALF_LEN}")
    ax.set_xlabel("filter half-length K (taps = 2K)")
    ax.set_ylabel("NMSE (dB)")
    ax.set_title(f"Fractional delay d = {delay} samples vs exact band-limited delay\n"
                 "(periodic flat-spectrum complex64 signal, period >= 64K, middle period)")
    ax.set_ylim(-150, -10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "channel_fractional_delay.png", dpi=110)
    plt.close(fig)
    return {"delay_samples": delay,
            "ideal": {"half_len": ks, "nmse_db": ideal, "theory_db": ideal_theory},
            "rolloff_0.25": {"half_len": ks_ro, "nmse_db": rolled, "theory_db": rolled_theory},
            "default_half_len": DEFAULT_HALF_LEN,
            "nmse_db_at_default": ideal[ks.index(DEFAULT_HALF_LEN)]}


def throughput(rng: np.random.Generator, xp=np, chunk: int = 1 << 16) -> dict:
    """Samples/s of the emulator on ``xp`` (numpy: the CPU, cupy: the GPU) (Veh-A, 220 km/h
    at 4 GHz, noise on, default K), best of 5 runs of 12 chunks of ``chunk`` samples."""
    nu_max = doppler_from_speed(SPEED_KMH, FC_HZ)
    x = ((rng.standard_normal(chunk) + 1j * rng.standard_normal(chunk)) / math.sqrt(2)).astype(np.complex64)
    x = xp.asarray(x)
    sync = xp.cuda.Stream.null.synchronize if xp is not np else (lambda: None)
    results = {}
    for name in ("demo", "paper"):
        config = zakotfs.preset(name)
        for model in ("single", "jakes"):
            paths = draw_paths(load_profile("veh-a"), nu_max, rng, doppler_model=model)
            emulator = ChannelEmulator(paths, config.bandwidth, snr_db=20.0, seed=1, xp=xp)
            for _ in range(3):
                emulator.process(x)                     # warm-up: fill the first blocks
            rates = []
            for _ in range(5):                          # best of 5: the host may be shared
                sync()
                start = time.perf_counter()
                for _ in range(12):
                    emulator.process(x)
                sync()
                rates.append(12 * chunk / (time.perf_counter() - start))
            rate = max(rates)
            results[f"{name}_{model}"] = {
                "sample_rate_hz": config.bandwidth, "samples_per_s": rate,
                "real_time_factor": rate / config.bandwidth, "block_len": emulator.block_len,
                "fft_len": emulator.fft_len, "half_len": emulator.half_len,
                "n_paths": paths.n_paths, "n_sinusoids": paths.n_sinusoids}
    results["host"] = {"cpu_count": os.cpu_count(), "machine": platform.machine(),
                       "load_average_1min": os.getloadavg()[0],
                       "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
                       "processor": platform.processor() or platform.machine(),
                       "note": "numpy/scipy.fft on the CPU; below real time at the paper rate is expected. "
                               "Jakes gains use a batched complex64 matmul: on a busy host OpenBLAS "
                               "threads oversubscribe the cores (OPENBLAS_NUM_THREADS=1 avoids it)"}
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--gpu-throughput", action="store_true",
                        help="only the emulator's rate with CuPy (chunks of 2^20 samples): writes channel_gpu_rate.json")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.gpu_throughput:
        import cupy

        rates = throughput(np.random.default_rng(args.seed), cupy, chunk=1 << 20)
        (args.out / "channel_gpu_rate.json").write_text(json.dumps(rates, indent=2))
        for key, value in rates.items():
            if "samples_per_s" in value:
                print(f"GPU throughput {key}: {value['samples_per_s'] / 1e6:.1f} MS/s "
                      f"({value['real_time_factor']:.2f} x real time)")
        return
    seeds = np.random.SeedSequence(args.seed).spawn(4)
    report = {"seed": args.seed,
              "heff": figure_heff(np.random.default_rng(seeds[0]), args.out),
              "doppler_spectrum": figure_doppler(np.random.default_rng(seeds[1]), args.out),
              "fractional_delay": figure_fractional_delay(np.random.default_rng(seeds[2]), args.out),
              "throughput": throughput(np.random.default_rng(seeds[3]))}
    (args.out / "channel_plots.json").write_text(json.dumps(report, indent=2))
    fd = report["fractional_delay"]
    print(f"fractional delay NMSE at K={fd['default_half_len']}: {fd['nmse_db_at_default']:.2f} dB")
    for key, value in report["throughput"].items():
        if "samples_per_s" in value:
            print(f"throughput {key}: {value['samples_per_s'] / 1e6:.2f} MS/s "
                  f"({value['real_time_factor']:.3f} x real time)")
    print(f"wrote {args.out}/channel_*.png and channel_plots.json")


if __name__ == "__main__":
    main()
