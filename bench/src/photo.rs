//! Photo ingest (issue 4): our whole ingest of one 12 MP phone JPEG (decode, orient, 1600 px
//! photo, 320 px thumbnail, SHA-256, files and row stored in a real store, attached to a
//! request) against ImageMagick and libvips doing the same resizing on the same file.
//!
//! The goals, from the issue: faster than ImageMagick, within 2× of libvips, and the peak memory
//! of one ingest reported.
//!
//! Fairness:
//! - The source is generated here (photo-like: light, edges, texture and sensor noise, so it
//!   compresses like a photo), saved as a q92 baseline JPEG with EXIF orientation 6 and a GPS
//!   position, as phones save portrait photos. Every contender has to rotate it.
//! - Every contender reads the file from disk and writes both sizes to disk. The peers strip
//!   metadata too (`-strip`, `[strip]`), since we do. ImageMagick makes both sizes in one process
//!   from one decode (`-write`), its fastest way; libvips makes the thumbnail from its 1600 px
//!   output, as we make ours from our 1600 px image. All three only shrink (`>`), never enlarge.
//! - Each peer's bare start-up (printing its version) is reported beside its time, so a reader
//!   can see how much of it is process start rather than image work.
//! - Our ingest runs in this process (a library call, as in the app); the peers are separate
//!   processes, so their start-up is in their time. Peak memory and CPU time are measured for
//!   every contender alike, each as a child process (ours: this binary ingesting once) reaped by
//!   `wait4` in a small probe process (see `measured_child`); a child of this binary that does
//!   nothing but start gives the baseline.
//! - The contenders run interleaved, one run each per round, so drift hits all alike. Our
//!   ingest uses one core; ImageMagick and libvips may use both (OpenMP, vips' thread pool).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use chrono::{TimeZone, Utc};
use gridwalk_core::docs::{Reporter, Source, Urgency};
use gridwalk_core::model::{Area, AreaKind};
use gridwalk_core::photo::{ingest, Attachment, IngestOptions, Role};
use gridwalk_core::store::{Identity, NewRequest};
use gridwalk_core::{Store, Timestamp};
use serde_json::{json, Value};

#[derive(clap::Args)]
pub struct Args {
    /// Timed runs of each contender; medians are reported.
    #[arg(long, default_value_t = 15)]
    runs: usize,
    /// Width and height of the generated source photo.
    #[arg(long, default_value_t = 4000)]
    width: u32,
    #[arg(long, default_value_t = 3000)]
    height: u32,
    /// A tiny image and one run, to check in CI that the benchmark works; the figures mean
    /// nothing then.
    #[arg(long)]
    smoke: bool,
    /// Keep the source and every contender's output here, to look at them.
    #[arg(long)]
    keep_dir: Option<PathBuf>,
    /// Internal: ingest this file once into a new store in `--child-store` and exit (the child
    /// process whose peak memory is measured). Without a file, only start and exit (the baseline).
    #[arg(long, hide = true)]
    child_ingest: Option<PathBuf>,
    #[arg(long, hide = true)]
    child_store: Option<PathBuf>,
    #[arg(long, hide = true)]
    child_baseline: bool,
    /// Internal: run this command (a JSON array: program, then arguments) and print its peak
    /// resident set and CPU time. See `measured_child`.
    #[arg(long, hide = true)]
    rss_of: Option<String>,
}

const IMAGEMAGICK: [&str; 2] = ["/usr/bin/convert-im6.q16", "/usr/bin/convert"];
const VIPSTHUMBNAIL: &str = "/usr/bin/vipsthumbnail";

pub fn run(args: &Args) -> anyhow::Result<Value> {
    if args.child_baseline {
        return Ok(json!({}));
    }
    if let Some(command) = &args.rss_of {
        let command: Vec<String> = serde_json::from_str(command).context("--rss-of takes a JSON array")?;
        let (program, rest) = command.split_first().context("--rss-of needs a program")?;
        let (max_rss_kb, cpu_ms) = child_usage(Path::new(program), rest)?;
        return Ok(json!({ "max_rss_kb": max_rss_kb, "cpu_ms": cpu_ms }));
    }
    if let Some(file) = &args.child_ingest {
        let dir = args.child_store.as_deref().context("--child-store is needed with --child-ingest")?;
        let (hash, _) = ingest_into_new_store(file, dir, 0)?;
        return Ok(json!({ "hash": hash }));
    }

    let convert = IMAGEMAGICK.iter().map(Path::new).find(|p| p.is_file());
    let (Some(convert), true) = (convert, Path::new(VIPSTHUMBNAIL).is_file()) else {
        bail!(
            "the photo benchmark compares against ImageMagick (/usr/bin/convert) and libvips \
             ({VIPSTHUMBNAIL}), and at least one is missing: run `bash bench/setup-photo.sh` as root \
             (it installs Debian's imagemagick and libvips-tools), then run the benchmark again"
        );
    };

    let (width, height, runs) = if args.smoke { (400, 300, 1) } else { (args.width, args.height, args.runs) };
    ensure!(runs >= 1, "--runs must be at least 1");
    let work = tempfile::tempdir()?;
    let out_dir = match &args.keep_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => work.path().to_path_buf(),
    };
    let source_path = out_dir.join("source.jpg");
    // Stored sideways with orientation 6, so it is `height` × `width` on disk and upright
    // `width` × `height`, as a phone held upright stores a landscape scene turned.
    let source = photo_jpeg(width, height);
    std::fs::write(&source_path, &source)?;
    let one_ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;

    let magick_args = |n: usize| -> Vec<String> {
        vec![
            source_path.display().to_string(),
            "-auto-orient".into(),
            "-strip".into(),
            "-resize".into(),
            "1600x1600>".into(),
            "-quality".into(),
            "80".into(),
            "-write".into(),
            out_dir.join(format!("magick-{n}.jpg")).display().to_string(),
            "-resize".into(),
            "320x320>".into(),
            out_dir.join(format!("magick-{n}-thumb.jpg")).display().to_string(),
        ]
    };
    let vips_full = |n: usize| out_dir.join(format!("vips-{n}.jpg"));
    let vips_runs = |n: usize| -> [Vec<String>; 2] {
        let full = vips_full(n);
        [
            vec![
                source_path.display().to_string(),
                "--size".into(),
                "1600x1600>".into(),
                "-o".into(),
                format!("{}[Q=80,strip]", full.display()),
            ],
            vec![
                full.display().to_string(),
                "--size".into(),
                "320x320>".into(),
                "-o".into(),
                format!("{}[Q=80,strip]", out_dir.join(format!("vips-{n}-thumb.jpg")).display()),
            ],
        ]
    };

    // One untimed round first: page cache, shared libraries, CPU frequency.
    let warm = work.path().join("warm");
    ingest_into_new_store(&source_path, &warm, 0)?;
    run_tool(convert, &magick_args(0))?;
    for call in vips_runs(0) {
        run_tool(Path::new(VIPSTHUMBNAIL), &call)?;
    }

    let (mut ours, mut magick, mut vips) = (Vec::new(), Vec::new(), Vec::new());
    // The ingest alone, on bytes already in memory and with nothing stored: the image work,
    // without the file read and the fsyncs of the store.
    let mut ours_ingest_only = Vec::new();
    let mut ours_bytes = (0, 0);
    for n in 1..=runs {
        let store_dir = work.path().join(format!("store-{n}"));
        let started = Instant::now();
        let (_, sizes) = ingest_into_new_store(&source_path, &store_dir, n)?;
        ours.push(one_ms(started.elapsed()));
        ours_bytes = sizes;
        std::fs::remove_dir_all(&store_dir)?;
        let started = Instant::now();
        std::hint::black_box(ingest(&source, &IngestOptions::default())?);
        ours_ingest_only.push(one_ms(started.elapsed()));

        let started = Instant::now();
        run_tool(convert, &magick_args(n))?;
        magick.push(one_ms(started.elapsed()));

        let started = Instant::now();
        for call in vips_runs(n) {
            run_tool(Path::new(VIPSTHUMBNAIL), &call)?;
        }
        vips.push(one_ms(started.elapsed()));
    }

    let startup = |program: &Path, args: &[&str]| -> anyhow::Result<f64> {
        let mut samples = Vec::new();
        for _ in 0..runs.clamp(3, 9) {
            let started = Instant::now();
            run_tool(program, &args.iter().map(|a| a.to_string()).collect::<Vec<_>>())?;
            samples.push(one_ms(started.elapsed()));
        }
        Ok(median(&mut samples))
    };
    let magick_startup = startup(convert, &["-version"])?;
    let vips_startup = startup(Path::new(VIPSTHUMBNAIL), &["--vips-version"])?;

    // Peak memory and CPU time, each in a child process of its own.
    let me = std::env::current_exe()?;
    let probe = |program: &Path, args: &[String]| measured_child(&me, program, args);
    let baseline = probe(&me, &["photo".into(), "--child-baseline".into()])?;
    let ours_usage = probe(
        &me,
        &[
            "photo".into(),
            "--child-ingest".into(),
            source_path.display().to_string(),
            "--child-store".into(),
            work.path().join("rss-store").display().to_string(),
        ],
    )?;
    let magick_usage = probe(convert, &magick_args(runs + 1))?;
    let vips_usage = vips_runs(runs + 2)
        .iter()
        .map(|call| probe(Path::new(VIPSTHUMBNAIL), call))
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .fold((0, 0.0), |(rss, cpu), (r, c)| (rss.max(r), cpu + c));
    let (baseline_rss, ours_rss, magick_rss, vips_rss) = (baseline.0, ours_usage.0, magick_usage.0, vips_usage.0);
    // The largest PNG the ingest accepts (RGBA, 8 bits: what screenshots and editors save), whose
    // decode cannot be scaled down: its peak memory is the most one ingest may take.
    let max_pixels = IngestOptions::default().max_pixels;
    let (png_w, png_h) = if args.smoke { (600, 400) } else { largest_png_size(max_pixels) };
    let png_path = out_dir.join("largest.png");
    std::fs::write(&png_path, gradient_png(png_w, png_h)?)?;
    let png_usage = probe(
        &me,
        &[
            "photo".into(),
            "--child-ingest".into(),
            png_path.display().to_string(),
            "--child-store".into(),
            work.path().join("rss-store-png").display().to_string(),
        ],
    )?;

    if args.keep_dir.is_some() {
        let photo = ingest(&source, &IngestOptions::default())?;
        std::fs::write(out_dir.join("gridwalk.jpg"), &photo.full.bytes)?;
        std::fs::write(out_dir.join("gridwalk-thumb.jpg"), &photo.thumb.bytes)?;
    }
    let size_of = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let (ours_med, magick_med, vips_med) = (median(&mut ours), median(&mut magick), median(&mut vips));
    let mb = |kb: u64| (kb as f64 / 1024.0 * 10.0).round() / 10.0;
    let round = |v: f64| (v * 10.0).round() / 10.0;
    Ok(json!({
        "benchmark": "photo ingest (issue 4)",
        "smoke": args.smoke,
        "runs": runs,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "source": {
            "upright_size": [width, height],
            "stored_size": [height, width],
            "exif_orientation": 6,
            "bytes": source.len(),
            "kind": "generated photo-like scene, baseline JPEG q92 4:2:0, EXIF with orientation and GPS",
        },
        "gridwalk": {
            "what": "read file, decode, orient, Lanczos3 to 1600 px and 320 px, JPEG q80, SHA-256, \
                     both files written atomically (fsync), row and document change in one SQLite transaction",
            "median_ms": round(ours_med),
            "min_ms": round(ours.first().copied().unwrap_or(0.0)),
            "max_ms": round(ours.last().copied().unwrap_or(0.0)),
            "photo_bytes": ours_bytes.0,
            "thumb_bytes": ours_bytes.1,
            "in_memory_ingest_median_ms": round(median(&mut ours_ingest_only)),
            "cpu_ms_one_run": round(ours_usage.1),
            "peak_rss_mb": mb(ours_rss),
            "largest_accepted_png": {
                "size": [png_w, png_h],
                "pixels": u64::from(png_w) * u64::from(png_h),
                "limit_pixels": max_pixels,
                "color": "RGBA, 8 bits",
                "peak_rss_mb": mb(png_usage.0),
            },
            "goal_peak_rss_at_most_150_mb": !args.smoke && ours_rss.max(png_usage.0) <= 150 * 1024,
            "process_baseline_rss_mb": mb(baseline_rss),
        },
        "imagemagick": {
            "command": format!("{} {}", convert.display(), magick_args(0).join(" ")),
            "version": tool_version(convert, &["-version"]),
            "median_ms": round(magick_med),
            "min_ms": round(magick.first().copied().unwrap_or(0.0)),
            "max_ms": round(magick.last().copied().unwrap_or(0.0)),
            "photo_bytes": size_of(out_dir.join("magick-1.jpg")),
            "thumb_bytes": size_of(out_dir.join("magick-1-thumb.jpg")),
            "cpu_ms_one_run": round(magick_usage.1),
            "peak_rss_mb": mb(magick_rss),
            "startup_ms": round(magick_startup),
        },
        "libvips": {
            "command": vips_runs(0).iter().map(|a| format!("{VIPSTHUMBNAIL} {}", a.join(" "))).collect::<Vec<_>>().join(" && "),
            "version": tool_version(Path::new(VIPSTHUMBNAIL), &["--vips-version"]),
            "median_ms": round(vips_med),
            "min_ms": round(vips.first().copied().unwrap_or(0.0)),
            "max_ms": round(vips.last().copied().unwrap_or(0.0)),
            "photo_bytes": size_of(vips_full(1)),
            "thumb_bytes": size_of(out_dir.join("vips-1-thumb.jpg")),
            "cpu_ms_one_run": round(vips_usage.1),
            "peak_rss_mb": mb(vips_rss),
            "startup_ms_per_call": round(vips_startup),
        },
        "ratios": {
            "gridwalk_over_imagemagick": round2(ours_med / magick_med),
            "gridwalk_over_libvips": round2(ours_med / vips_med),
        },
        "goals": {
            "faster_than_imagemagick": ours_med < magick_med,
            "within_2x_of_libvips": ours_med <= 2.0 * vips_med,
        },
    }))
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Sorts the samples and returns their median.
pub(crate) fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    }
}

/// A new phone store at `path` with one grid (`grid`) to raise requests in.
pub(crate) fn new_store(path: &Path) -> anyhow::Result<Store> {
    let store = Store::create(path, Identity { device: "bench-phone".into(), walker: "bench".into() })?;
    for (id, kind, parent) in [
        ("town", AreaKind::Town, None),
        ("village", AreaKind::Village, Some("town")),
        ("grid", AreaKind::Grid, Some("village")),
    ] {
        store.put_area(&Area {
            id: id.into(),
            kind,
            name: id.into(),
            parent: parent.map(str::to_string),
            enterprise_grid: false,
        })?;
    }
    Ok(store)
}

/// A new store with one request, then the timed part's work: the file read from disk, ingested,
/// stored and attached. Returns the photo's hash and the sizes of photo and thumbnail.
fn ingest_into_new_store(file: &Path, dir: &Path, n: usize) -> anyhow::Result<(String, (usize, usize))> {
    std::fs::create_dir_all(dir)?;
    let store = new_store(&dir.join("bench.gridwalk"))?;
    let at = Timestamp(Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap() + chrono::Duration::seconds(n as i64));
    let ctx = store.context(at);
    let request = store.raise_request(
        &ctx,
        NewRequest {
            id: None,
            grid: "grid".into(),
            micro_grid: None,
            reporter: Reporter::Anonymous,
            address: "村道".into(),
            gps: None,
            category: "streetlight".into(),
            description: "路灯不亮".into(),
            urgency: Urgency::Normal,
            source: Source::Visit,
            visit: None,
        },
    )?;

    let bytes = std::fs::read(file)?;
    let photo = ingest(&bytes, &IngestOptions::default())?;
    drop(bytes);
    store.add_photo(&ctx, &request, &photo, &Attachment { role: Role::Before, caption: None, gps: None })?;
    Ok((photo.full.hash.clone(), (photo.full.bytes.len(), photo.thumb.bytes.len())))
}

fn run_tool(program: &Path, args: &[String]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    ensure!(
        out.status.success(),
        "{} {} failed: {}",
        program.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn tool_version(program: &Path, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::trim).map(str::to_string))
        .unwrap_or_default()
}

/// Peak resident set (KiB) and CPU time (ms) of one run of `program`, measured from a small
/// probe process (this binary again, `--rss-of`) rather than from here. Linux carries a forked
/// child's resident high-water mark from before its `exec` into what `wait4` reports, and this
/// process holds the generated 12 MP scene: measured from here, every child would seem at least
/// as large as this process. The probe holds next to nothing, so what it reports is the
/// program's own peak (or the probe's few MB, whichever is larger; the baseline shows that floor).
fn measured_child(me: &Path, program: &Path, args: &[String]) -> anyhow::Result<(u64, f64)> {
    let mut command = vec![program.display().to_string()];
    command.extend(args.iter().cloned());
    let out = Command::new(me)
        .args(["photo", "--rss-of", &serde_json::to_string(&command)?])
        .stdin(Stdio::null())
        .output()
        .context("starting the measuring probe")?;
    ensure!(out.status.success(), "measuring {}: {}", program.display(), String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).context("the probe's report")?;
    Ok((report["max_rss_kb"].as_u64().context("max_rss_kb")?, report["cpu_ms"].as_f64().context("cpu_ms")?))
}

/// Runs a program to its end and returns its peak resident set (KiB) and its user + system CPU
/// time (ms). `wait4` reports the one child it reaps (unlike `getrusage(RUSAGE_CHILDREN)`, which
/// keeps the maximum over every child this process ever waited for).
fn child_usage(program: &Path, args: &[String]) -> anyhow::Result<(u64, f64)> {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `rusage` is plain data that `wait4` fills in; the pid is our own child, not yet
    // reaped (the `Child` handle is never waited on, and dropping it does not wait).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    ensure!(reaped == pid, "waiting for {}: {}", program.display(), std::io::Error::last_os_error());
    ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{} {} failed (status {status})",
        program.display(),
        args.join(" ")
    );
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    // Linux reports ru_maxrss in KiB.
    Ok((usage.ru_maxrss as u64, ms(usage.ru_utime) + ms(usage.ru_stime)))
}

// ----- the source photo ------------------------------------------------------------------------------

/// A cheap hash of a lattice point, for value noise.
fn lattice(x: i32, y: i32, seed: u32) -> f32 {
    let mut h =
        (x as u32).wrapping_mul(0x8DA6_B343) ^ (y as u32).wrapping_mul(0xD816_3841) ^ seed.wrapping_mul(0xCB1A_B31F);
    h ^= h >> 13;
    h = h.wrapping_mul(0x5851_F42D);
    h ^= h >> 16;
    (h & 0xFFFF) as f32 / 65535.0
}

/// Smooth value noise: lattice values blended with a smoothstep.
fn value_noise(x: f32, y: f32, seed: u32) -> f32 {
    let (xi, yi) = (x.floor() as i32, y.floor() as i32);
    let (fx, fy) = (x - xi as f32, y - yi as f32);
    let s = |t: f32| t * t * (3.0 - 2.0 * t);
    let (sx, sy) = (s(fx), s(fy));
    let top = lattice(xi, yi, seed) * (1.0 - sx) + lattice(xi + 1, yi, seed) * sx;
    let bottom = lattice(xi, yi + 1, seed) * (1.0 - sx) + lattice(xi + 1, yi + 1, seed) * sx;
    top * (1.0 - sy) + bottom * sy
}

/// An upright `w` × `h` street scene: sky with clouds, a row of houses with windows, a utility
/// pole, a road in perspective, foliage, and sensor noise.
fn scene(w: u32, h: u32) -> Vec<u8> {
    let mut px = Vec::with_capacity((w * h * 3) as usize);
    let mut noise_state = 0x2545_F491_4F6C_DD1Du64;
    let scale = w as f32 / 4000.0;
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let (xs, ys) = (x as f32 / scale, y as f32 / scale);
            let texture = value_noise(xs / 40.0, ys / 40.0, 1) * 0.6 + value_noise(xs / 9.0, ys / 9.0, 2) * 0.4;
            let horizon = 0.42 + 0.03 * (fx * 6.0).sin();
            let mut rgb = if fy < horizon - 0.12 {
                let cloud = (value_noise(xs / 260.0, ys / 90.0, 3) - 0.45).max(0.0) * 2.5;
                let sky = [95.0 + 90.0 * fy, 150.0 + 60.0 * fy, 235.0 - 20.0 * fy];
                sky.map(|c| c + (250.0 - c) * cloud.min(1.0))
            } else if fy < horizon {
                // Houses: white walls, grey roofs, dark windows in a grid.
                let house = (fx * 7.0).floor();
                let roof = fy < horizon - 0.09 + 0.01 * ((house * 1.7).sin());
                let window = ((fx * 70.0).fract() < 0.35) && ((fy * 60.0).fract() < 0.45) && !roof;
                let base = if roof {
                    [90.0, 92.0, 100.0]
                } else if window {
                    [40.0, 45.0, 55.0]
                } else {
                    [225.0, 222.0, 212.0]
                };
                base.map(|c| c * (0.85 + 0.15 * texture))
            } else {
                // Road in perspective with a centre line, verges of foliage.
                let depth = (fy - horizon) / (1.0 - horizon);
                let half = 0.05 + 0.45 * depth;
                let d = (fx - 0.5).abs();
                if d < half {
                    let line = d < 0.004 + 0.01 * depth && ((depth * 40.0).fract() < 0.5);
                    if line {
                        [235.0, 225.0, 120.0]
                    } else {
                        [105.0, 104.0, 108.0].map(|c| c * (0.8 + 0.4 * texture))
                    }
                } else {
                    let leaf = value_noise(xs / 5.0, ys / 5.0, 4);
                    [50.0 + 60.0 * leaf, 90.0 + 90.0 * texture, 40.0 + 30.0 * leaf]
                }
            };
            // A utility pole with a dark lamp head: the streetlight of the request.
            if (fx - 0.7).abs() < 0.006 && fy > 0.18 && fy < 0.8 {
                rgb = [70.0, 68.0, 66.0];
            }
            if fx > 0.7 && fx < 0.75 && (fy - 0.19).abs() < 0.008 {
                rgb = [30.0, 30.0, 35.0];
            }
            noise_state ^= noise_state << 13;
            noise_state ^= noise_state >> 7;
            noise_state ^= noise_state << 17;
            let grain = (noise_state % 13) as f32 - 6.0;
            px.extend(rgb.map(|c| (c + grain).clamp(0.0, 255.0) as u8));
        }
    }
    px
}

/// The scene stored as a phone stores a photo taken with orientation 6: rotated a quarter turn
/// counter-clockwise on disk, with an EXIF block that says to turn it back, a camera make and a
/// GPS position.
pub(crate) fn photo_jpeg(w: u32, h: u32) -> Vec<u8> {
    let upright = scene(w, h);
    // Stored pixel (sx, sy) is shown at (w - 1 - sy, sx): orientation 6, "rotate 90° clockwise
    // to view".
    let (sw, sh) = (h, w);
    let mut stored = vec![0u8; upright.len()];
    for sy in 0..sh {
        for sx in 0..sw {
            let (x, y) = (w - 1 - sy, sx);
            let from = ((y * w + x) * 3) as usize;
            let to = ((sy * sw + sx) * 3) as usize;
            stored[to..to + 3].copy_from_slice(&upright[from..from + 3]);
        }
    }
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 92);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    encoder.add_exif_metadata(&exif_block(6)).expect("a small EXIF block");
    encoder.encode(&stored, sw as u16, sh as u16, jpeg_encoder::ColorType::Rgb).expect("encoding the source");
    out
}

/// TIFF-structured EXIF, little-endian: make, orientation and a GPS latitude.
fn exif_block(orientation: u16) -> Vec<u8> {
    fn entry(t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]) {
        t.extend(tag.to_le_bytes());
        t.extend(kind.to_le_bytes());
        t.extend(count.to_le_bytes());
        t.extend(value);
    }
    let make = b"BenchPhone\0";
    let make_at = 8 + 2 + 3 * 12 + 4u32;
    let gps_at = make_at + make.len() as u32;
    let lat_at = gps_at + 2 + 2 * 12 + 4;
    let mut t = b"II*\0".to_vec();
    t.extend(8u32.to_le_bytes());
    t.extend(3u16.to_le_bytes());
    entry(&mut t, 0x010F, 2, make.len() as u32, make_at.to_le_bytes());
    let o = orientation.to_le_bytes();
    entry(&mut t, 0x0112, 3, 1, [o[0], o[1], 0, 0]);
    entry(&mut t, 0x8825, 4, 1, gps_at.to_le_bytes());
    t.extend(0u32.to_le_bytes());
    t.extend(make);
    t.extend(2u16.to_le_bytes());
    entry(&mut t, 0x0001, 2, 2, [b'N', 0, 0, 0]);
    entry(&mut t, 0x0002, 5, 3, lat_at.to_le_bytes());
    t.extend(0u32.to_le_bytes());
    for (n, d) in [(30u32, 1u32), (42, 1), (1234, 100)] {
        t.extend(n.to_le_bytes());
        t.extend(d.to_le_bytes());
    }
    t
}

/// The largest 3:2 image within `max_pixels`.
fn largest_png_size(max_pixels: u64) -> (u32, u32) {
    let unit = ((max_pixels / 6) as f64).sqrt().floor() as u32;
    (unit * 3, unit * 2)
}

/// An RGBA PNG of smooth gradients: small on disk (the file is not what is measured) but as
/// large decoded as any PNG of its size.
fn gradient_png(w: u32, h: u32) -> anyhow::Result<Vec<u8>> {
    let mut pixels = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            pixels.extend_from_slice(&[(x * 255 / w) as u8, (y * 255 / h) as u8, 128, 255]);
        }
    }
    let image = image::RgbaImage::from_raw(w, h, pixels).context("the gradient's pixels")?;
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}
