//! The photo pipeline (issue 4), on images generated here: orientation, formats, refusals,
//! metadata, memory, and the store's files, rows, documents, garbage collection and export.
//!
//! Source JPEGs are written with `jpeg-encoder`, which can add APP segments, so the EXIF blocks
//! (orientation, camera make, GPS) and XMP packets are built byte by byte below, exactly as a
//! phone writes them. Pixels are compared with an independent implementation of what each EXIF
//! orientation means, not with the library code the pipeline itself uses.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Cursor;
use std::path::Path;

use chrono::{Duration, TimeZone, Utc};
use gridwalk_core::doc_view::DocView;
use gridwalk_core::docs::{GeoPoint, Reporter, Source, Urgency, VisitKind, VisitTarget};
use gridwalk_core::lifecycle::{Action, TriageDecision};
use gridwalk_core::model::{Area, AreaKind};
use gridwalk_core::photo::{
    attach, content_hash, ingest, Attachment, IngestError, IngestOptions, PhotoError, Role, SourceFormat,
};
use gridwalk_core::store::{
    Identity, NewRequest, NewVisit, PhotoProcessed, PhotoQueueCounts, PhotoToQueue, QueuedPhotoState, Store,
};
use gridwalk_core::Timestamp;
use image::{GenericImageView, RgbImage};

// ----- measuring memory ------------------------------------------------------------------------------
//
// A counting allocator that counts only on the thread that asked for it: the test harness runs
// tests in parallel threads, and an ingest runs on its caller's thread (zune-jpeg and
// fast_image_resize without its rayon feature start no threads of their own).

struct Counting;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static CURRENT: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn note(delta: i64) {
    let _ = TRACKING.try_with(|tracking| {
        if tracking.get() {
            let now = CURRENT.with(|c| {
                c.set(c.get() + delta);
                c.get()
            });
            PEAK.with(|p| p.set(p.get().max(now)));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(layout.size() as i64);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note(layout.size() as i64);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        note(-(layout.size() as i64));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Counted as both alive at once, as they are while a moving realloc copies.
            note(new_size as i64);
            note(-(layout.size() as i64));
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the most heap it held at any one moment.
fn peak_heap<R>(f: impl FnOnce() -> R) -> (R, u64) {
    CURRENT.with(|c| c.set(0));
    PEAK.with(|p| p.set(0));
    TRACKING.with(|t| t.set(true));
    let result = f();
    TRACKING.with(|t| t.set(false));
    (result, PEAK.with(|p| p.get()).max(0) as u64)
}

// ----- generated images ------------------------------------------------------------------------------

/// An upright test picture: four quadrants of clearly different colours, with a gradient and a
/// dark diagonal stripe, so that every wrong orientation is far from the right one.
fn quadrants(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let base: [u8; 3] = match (x < w / 2, y < h / 2) {
            (true, true) => [220, 40, 40],
            (false, true) => [40, 200, 60],
            (true, false) => [40, 60, 220],
            (false, false) => [230, 220, 40],
        };
        let shade = (x * 40 / w) as u8;
        let stripe = (x as i64 - y as i64).rem_euclid(w as i64 / 3) < 6;
        image::Rgb(base.map(|c| if stripe { c / 4 } else { c.saturating_sub(shade) }))
    })
}

/// A photo-like picture: smooth light, a few objects with edges, and sensor-like noise, so it
/// compresses like a photo rather than like a flat test card.
fn photo_like(w: u32, h: u32) -> RgbImage {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    RgbImage::from_fn(w, h, |x, y| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = (state % 17) as i32 - 8;
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let sky = fy < 0.4;
        let pole = (fx - 0.62).abs() < 0.01 && fy > 0.15;
        let (r, g, b) = if pole {
            (60.0, 60.0, 70.0)
        } else if sky {
            (120.0 + 80.0 * fy, 160.0 + 60.0 * fy, 230.0)
        } else {
            let wall = ((fx * 9.0).floor() as i32 % 2) as f32 * 30.0;
            (150.0 + wall - 60.0 * fy, 130.0 + wall * 0.5, 100.0 + 40.0 * fx)
        };
        let px = |v: f32| (v as i32 + noise).clamp(0, 255) as u8;
        image::Rgb([px(r), px(g), px(b)])
    })
}

/// An EXIF block (TIFF, little-endian) as a phone writes it: camera make, orientation, and a GPS
/// position in its own IFD.
fn exif_block(orientation: u16) -> Vec<u8> {
    fn entry(t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]) {
        t.extend(tag.to_le_bytes());
        t.extend(kind.to_le_bytes());
        t.extend(count.to_le_bytes());
        t.extend(value);
    }
    const ASCII: u16 = 2;
    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    const RATIONAL: u16 = 5;
    let make = b"GridPhone X1\0";
    let ifd0_at = 8u32;
    let make_at = ifd0_at + 2 + 3 * 12 + 4;
    let gps_at = make_at + make.len() as u32;
    let lat_at = gps_at + 2 + 2 * 12 + 4;

    let mut t = b"II*\0".to_vec();
    t.extend(ifd0_at.to_le_bytes());
    t.extend(3u16.to_le_bytes());
    entry(&mut t, 0x010F, ASCII, make.len() as u32, make_at.to_le_bytes());
    let o = orientation.to_le_bytes();
    entry(&mut t, 0x0112, SHORT, 1, [o[0], o[1], 0, 0]);
    entry(&mut t, 0x8825, LONG, 1, gps_at.to_le_bytes());
    t.extend(0u32.to_le_bytes());
    t.extend(make);
    t.extend(2u16.to_le_bytes());
    entry(&mut t, 0x0001, ASCII, 2, [b'N', 0, 0, 0]);
    entry(&mut t, 0x0002, RATIONAL, 3, lat_at.to_le_bytes());
    t.extend(0u32.to_le_bytes());
    for (n, d) in [(30u32, 1u32), (42, 1), (1234, 100)] {
        t.extend(n.to_le_bytes());
        t.extend(d.to_le_bytes());
    }
    t
}

const XMP: &[u8] = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF \
    xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'><rdf:Description \
    xmlns:exif='http://ns.adobe.com/exif/1.0/' exif:GPSLatitude='30,42.34N' \
    exif:GPSLongitude='121,0.5E'/></rdf:RDF></x:xmpmeta>";

enum Jpeg<'a> {
    Rgb(&'a RgbImage),
    Gray(&'a image::GrayImage),
    /// CMYK samples, 4 bytes a pixel (0 = no ink), with its size.
    Cmyk(&'a [u8], u32, u32),
}

fn jpeg(src: Jpeg<'_>, progressive: bool, orientation: Option<u16>, xmp: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 92);
    encoder.set_progressive(progressive);
    if let Some(o) = orientation {
        encoder.add_exif_metadata(&exif_block(o)).unwrap();
    }
    if xmp {
        encoder.add_app_segment(1, XMP.to_vec()).unwrap();
    }
    match src {
        Jpeg::Rgb(img) => {
            encoder.encode(img.as_raw(), img.width() as u16, img.height() as u16, jpeg_encoder::ColorType::Rgb)
        }
        Jpeg::Gray(img) => {
            encoder.encode(img.as_raw(), img.width() as u16, img.height() as u16, jpeg_encoder::ColorType::Luma)
        }
        Jpeg::Cmyk(data, w, h) => encoder.encode(data, w as u16, h as u16, jpeg_encoder::ColorType::Cmyk),
    }
    .unwrap();
    out
}

/// What a viewer must show for a stored image with this EXIF orientation, written from the
/// EXIF specification's table (where the stored 0th row and 0th column end up), independently
/// of the pipeline's code. Returns the stored image for an upright one.
fn stored_for(upright: &RgbImage, orientation: u16) -> RgbImage {
    let (w, h) = upright.dimensions();
    let swapped = orientation >= 5;
    let (sw, sh) = if swapped { (h, w) } else { (w, h) };
    let mut stored = RgbImage::new(sw, sh);
    for y in 0..h {
        for x in 0..w {
            // (sx, sy): the stored pixel that the viewer shows at (x, y).
            let (sx, sy) = match orientation {
                1 => (x, y),
                2 => (w - 1 - x, y),
                3 => (w - 1 - x, h - 1 - y),
                4 => (x, h - 1 - y),
                5 => (y, x),
                6 => (y, w - 1 - x),
                7 => (h - 1 - y, w - 1 - x),
                8 => (h - 1 - y, x),
                _ => unreachable!(),
            };
            stored.put_pixel(sx, sy, *upright.get_pixel(x, y));
        }
    }
    stored
}

/// Mean absolute difference per channel.
fn mad(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let sum: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(&p, &q)| u64::from(p.abs_diff(q))).sum();
    sum as f64 / a.as_raw().len() as f64
}

fn decode(bytes: &[u8]) -> image::DynamicImage {
    image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg).unwrap()
}

/// The APPn and COM markers of a JPEG, in order, up to its first scan.
fn header_segments(jpeg: &[u8]) -> Vec<(u8, Vec<u8>)> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    let mut pos = 2;
    let mut found = Vec::new();
    loop {
        assert_eq!(jpeg[pos], 0xFF, "segment at {pos}");
        let marker = jpeg[pos + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
        if marker == 0xDA {
            return found;
        }
        if (0xE0..=0xEF).contains(&marker) || marker == 0xFE {
            found.push((marker, jpeg[pos + 4..pos + 2 + len].to_vec()));
        }
        pos += 2 + len;
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A PNG whose header claims `w` × `h` RGBA pixels, followed by a little compressed data: a few
/// hundred bytes that would need `w * h * 4` bytes to decode.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    png_claiming_depth(w, h, 8)
}

/// A PNG whose header claims `w` × `h` RGBA pixels of `depth` bits a channel.
fn png_claiming_depth(w: u32, h: u32, depth: u8) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([depth, 6, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    // A zlib stream of 1,024 zero bytes, stored uncompressed.
    let mut idat = vec![0x78, 0x01, 0x01, 0x00, 0x04, 0xFF, 0xFB];
    idat.extend([0u8; 1024]);
    idat.extend([0, 0, 0, 1]);
    chunk(&mut png, b"IDAT", &idat);
    chunk(&mut png, b"IEND", &[]);
    png
}

fn png_rgba(img: &image::RgbaImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

// ----- a store with a visit and a request ------------------------------------------------------------

fn t(minutes: i64) -> Timestamp {
    Timestamp(Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap() + Duration::minutes(minutes))
}

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
    visit: String,
    request: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(
        dir.path().join("walker.gridwalk"),
        Identity { device: "phone-7".into(), walker: "wang-li".into() },
    )
    .unwrap();
    for (id, kind, parent) in [
        ("caoqiao", AreaKind::Town, None),
        ("mashe", AreaKind::Village, Some("caoqiao")),
        ("mashe-1", AreaKind::Grid, Some("mashe")),
    ] {
        store
            .put_area(&Area {
                id: id.into(),
                kind,
                name: id.into(),
                parent: parent.map(str::to_string),
                enterprise_grid: false,
            })
            .unwrap();
    }
    let ctx = store.context(t(0));
    let visit = store
        .record_visit(
            &ctx,
            NewVisit {
                id: None,
                grid: "mashe-1".into(),
                micro_grid: None,
                target: VisitTarget::Place { address: "马厩村 3 组 村道".into() },
                kind: VisitKind::Daily,
                visited_at: None,
                other_walkers: vec![],
                companions: vec![],
                notes: "村道路灯不亮".into(),
                gps: None,
            },
        )
        .unwrap();
    let request = store
        .raise_request(
            &ctx,
            NewRequest {
                id: None,
                grid: "mashe-1".into(),
                micro_grid: None,
                reporter: Reporter::Anonymous,
                address: "马厩村 3 组 村道".into(),
                gps: None,
                category: "streetlight".into(),
                description: "村道没有路灯，晚上看不见".into(),
                urgency: Urgency::Normal,
                source: Source::Visit,
                visit: Some(visit.clone()),
            },
        )
        .unwrap();
    Fixture { dir, store, visit, request }
}

fn before(caption: &str) -> Attachment {
    Attachment { role: Role::Before, caption: Some(caption.into()), gps: None }
}

fn blob_files(store: &Store) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    let mut files = Vec::new();
    walk(&store.blob_dir(), &mut files);
    files.sort();
    files
}

fn photo_rows(store: &Store) -> i64 {
    store.connection().query_row("SELECT COUNT(*) FROM photos", [], |r| r.get(0)).unwrap()
}

// ----- orientation ---------------------------------------------------------------------------------------

#[test]
fn all_eight_exif_orientations_come_out_upright() {
    let upright = quadrants(240, 160);
    let upside_down = image::imageops::rotate180(&upright);
    for orientation in 1..=8u16 {
        let stored = stored_for(&upright, orientation);
        let source = jpeg(Jpeg::Rgb(&stored), false, Some(orientation), false);
        let photo = ingest(&source, &IngestOptions::default()).unwrap();
        assert_eq!(photo.source_orientation, orientation as u8);
        assert_eq!(photo.source_format, SourceFormat::Jpeg);
        let out = decode(&photo.full.bytes).to_rgb8();
        assert_eq!(out.dimensions(), (240, 160), "orientation {orientation}: size");
        let right = mad(&out, &upright);
        let wrong = mad(&out, &upside_down);
        assert!(right < 6.0, "orientation {orientation}: differs from upright by {right:.1}");
        assert!(wrong > 40.0, "orientation {orientation}: the comparison cannot tell ({wrong:.1})");

        // A photo smaller than a thumbnail is its own thumbnail: same bytes, so one stored file.
        assert_eq!(photo.thumb, photo.full, "orientation {orientation}: a small photo is not enlarged");
    }
}

#[test]
fn a_large_rotated_photo_is_shrunk_to_1600_with_a_320_thumbnail() {
    let upright = photo_like(2000, 1500);
    let stored = stored_for(&upright, 6);
    let source = jpeg(Jpeg::Rgb(&stored), false, Some(6), false);
    assert_eq!(image::load_from_memory(&source).unwrap().dimensions(), (1500, 2000));
    let photo = ingest(&source, &IngestOptions::default()).unwrap();
    assert_eq!((photo.full.width, photo.full.height), (1600, 1200));
    assert_eq!((photo.thumb.width, photo.thumb.height), (320, 240));
    let out = decode(&photo.full.bytes).to_rgb8();
    assert_eq!(out.dimensions(), (1600, 1200));
    let expected = image::imageops::resize(&upright, 1600, 1200, image::imageops::FilterType::Lanczos3);
    let diff = mad(&out, &expected);
    assert!(diff < 5.0, "differs from the upright source, resized, by {diff:.1}");
    let thumb = decode(&photo.thumb.bytes);
    assert_eq!(thumb.dimensions(), (320, 240));

    // A smaller long side can be asked for.
    let small =
        ingest(&source, &IngestOptions { max_long_side: 800, thumb_long_side: 100, ..IngestOptions::default() })
            .unwrap();
    assert_eq!((small.full.width, small.full.height), (800, 600));
    assert_eq!((small.thumb.width, small.thumb.height), (100, 75));
}

// ----- formats -----------------------------------------------------------------------------------------

#[test]
fn png_with_alpha_is_flattened_on_white() {
    let img = image::RgbaImage::from_fn(200, 100, |x, _| {
        if x < 100 {
            image::Rgba([0, 0, 0, 0]) // transparent: becomes white, not black
        } else if x < 150 {
            image::Rgba([200, 30, 30, 255])
        } else {
            image::Rgba([0, 0, 255, 128]) // half-covering blue
        }
    });
    let photo = ingest(&png_rgba(&img), &IngestOptions::default()).unwrap();
    assert_eq!(photo.source_format, SourceFormat::Png);
    let out = decode(&photo.full.bytes).to_rgb8();
    let near = |x: u32, want: [u8; 3]| {
        let got = out.get_pixel(x, 50).0;
        assert!(got.iter().zip(want).all(|(&g, w)| g.abs_diff(w) <= 10), "pixel {x}: {got:?}, want about {want:?}");
    };
    near(40, [255, 255, 255]);
    near(125, [200, 30, 30]);
    near(180, [127, 127, 255]);
}

#[test]
fn webp_with_alpha_is_read_and_flattened() {
    let img = image::RgbaImage::from_fn(120, 80, |x, _| {
        if x < 60 {
            image::Rgba([30, 160, 60, 255])
        } else {
            image::Rgba([0, 0, 0, 0])
        }
    });
    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .encode(img.as_raw(), 120, 80, image::ExtendedColorType::Rgba8)
        .unwrap();
    let photo = ingest(&webp, &IngestOptions::default()).unwrap();
    assert_eq!(photo.source_format, SourceFormat::WebP);
    let out = decode(&photo.full.bytes).to_rgb8();
    assert_eq!(out.dimensions(), (120, 80));
    let left = out.get_pixel(20, 40).0;
    let right = out.get_pixel(100, 40).0;
    assert!(left[1] > 140 && left[0] < 60, "{left:?}");
    assert!(right.iter().all(|&c| c > 245), "{right:?}");
}

#[test]
fn grayscale_jpeg_stays_gray() {
    let gray = image::GrayImage::from_fn(300, 200, |x, y| image::Luma([((x + y) % 256) as u8]));
    let photo = ingest(&jpeg(Jpeg::Gray(&gray), false, None, false), &IngestOptions::default()).unwrap();
    let out = decode(&photo.full.bytes);
    assert_eq!(out.color(), image::ColorType::L8, "a gray photo is stored with one channel");
    let out = out.to_luma8();
    let diff: f64 = out.as_raw().iter().zip(gray.as_raw()).map(|(&a, &b)| f64::from(a.abs_diff(b))).sum::<f64>()
        / gray.as_raw().len() as f64;
    assert!(diff < 4.0, "{diff}");
}

#[test]
fn cmyk_jpeg_comes_out_in_the_right_colours() {
    // Left: full cyan ink. Middle: no ink (paper white). Right: full black ink.
    let (w, h) = (96u32, 48u32);
    let mut cmyk = Vec::with_capacity((w * h * 4) as usize);
    for _ in 0..h {
        for x in 0..w {
            cmyk.extend_from_slice(match x / 32 {
                0 => &[255, 0, 0, 0],
                1 => &[0, 0, 0, 0],
                _ => &[0, 0, 0, 255],
            });
        }
    }
    let source = jpeg(Jpeg::Cmyk(&cmyk, w, h), false, None, false);
    let photo = ingest(&source, &IngestOptions::default()).unwrap();
    let out = decode(&photo.full.bytes).to_rgb8();
    let at = |x: u32| out.get_pixel(x, 24).0;
    let (cyan, white, black) = (at(12), at(48), at(84));
    assert!(cyan[0] < 40 && cyan[1] > 215 && cyan[2] > 215, "cyan came out {cyan:?}");
    assert!(white.iter().all(|&c| c > 240), "white came out {white:?}");
    assert!(black.iter().all(|&c| c < 20), "black came out {black:?}");
}

#[test]
fn progressive_jpeg_is_read() {
    let upright = photo_like(1800, 1200);
    let source = jpeg(Jpeg::Rgb(&upright), true, Some(1), false);
    assert!(contains(&source, &[0xFF, 0xC2]), "the source is progressive (SOF2)");
    let photo = ingest(&source, &IngestOptions::default()).unwrap();
    assert_eq!((photo.full.width, photo.full.height), (1600, 1067));
    let out = decode(&photo.full.bytes).to_rgb8();
    let expected = image::imageops::resize(&upright, 1600, 1067, image::imageops::FilterType::Lanczos3);
    let diff = mad(&out, &expected);
    assert!(diff < 5.0, "{diff}");
}

// ----- metadata ----------------------------------------------------------------------------------------

#[test]
fn no_exif_xmp_or_gps_survives() {
    let source = jpeg(Jpeg::Rgb(&photo_like(640, 480)), false, Some(6), true);
    // The source really carries it: an EXIF parser finds the orientation and the position.
    let exif = exif::Reader::new().read_from_container(&mut Cursor::new(&source)).unwrap();
    let orientation = exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY).unwrap();
    assert_eq!(orientation.value.get_uint(0), Some(6));
    assert!(exif.get_field(exif::Tag::GPSLatitude, exif::In::PRIMARY).is_some());
    assert!(contains(&source, b"GridPhone"));

    let photo = ingest(&source, &IngestOptions::default()).unwrap();
    for (name, out) in [("photo", &photo.full.bytes), ("thumbnail", &photo.thumb.bytes)] {
        match exif::Reader::new().read_from_container(&mut Cursor::new(out)) {
            Err(exif::Error::NotFound(_)) => {}
            other => panic!("the {name} has EXIF: {:?}", other.map(|e| e.fields().count())),
        }
        let segments = header_segments(out);
        assert_eq!(
            segments.len(),
            1,
            "the {name} has extra segments: {:?}",
            segments.iter().map(|s| s.0).collect::<Vec<_>>()
        );
        assert_eq!(segments[0].0, 0xE0);
        assert!(segments[0].1.starts_with(b"JFIF\0"));
        for needle in [&b"Exif"[..], b"GridPhone", b"ns.adobe.com", b"GPS"] {
            assert!(!contains(out, needle), "the {name} contains {:?}", String::from_utf8_lossy(needle));
        }
    }
}

// ----- refusals ------------------------------------------------------------------------------------------

#[test]
fn bad_files_are_refused_with_clear_errors_and_nothing_is_stored() {
    let f = fixture();
    let good = jpeg(Jpeg::Rgb(&photo_like(400, 300)), false, Some(1), false);
    let mut sof_claims_huge = good.clone();
    // Patch the frame header (SOF0) to claim 60,000 × 60,000 pixels.
    let sof = good.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    sof_claims_huge[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic\0\0\0\x08free".to_vec();
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("zero bytes", vec![], "photo_empty", "empty"),
        ("truncated", good[..good.len() / 2].to_vec(), "photo_damaged", "incomplete"),
        ("text renamed .jpg", b"Shopping list:\n- rice\n- eggs\n".to_vec(), "photo_not_an_image", "text"),
        ("a 50,000 x 50,000 PNG", png_claiming(50_000, 50_000), "photo_too_large", "50000 × 50000"),
        ("a JPEG claiming 60,000 x 60,000", sof_claims_huge, "photo_too_large", "60000 × 60000"),
        ("HEIC", heic, "photo_unsupported_format", "HEIC"),
        ("GIF", b"GIF89a\x01\0\x01\0\0\0\0;".to_vec(), "photo_unsupported_format", "GIF"),
    ];
    let ctx = f.store.context(t(5));
    let outbox = f.store.outbox_len().unwrap();
    for (what, bytes, code, says) in cases {
        let err =
            f.store.add_photo_file(&ctx, &f.request, &bytes, &IngestOptions::default(), &before("路灯")).unwrap_err();
        assert_eq!(err.code(), code, "{what}: {err}");
        let message = err.to_string();
        assert!(message.contains(says), "{what}: '{message}' should say '{says}'");
        assert!(!f.store.photos_of(&f.request).unwrap().iter().any(|_| true), "{what}: attached");
    }
    assert_eq!(photo_rows(&f.store), 0);
    assert_eq!(blob_files(&f.store), Vec::<String>::new());
    assert_eq!(f.store.outbox_len().unwrap(), outbox);

    // The messages say what to do.
    let heic = ingest(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", &IngestOptions::default()).unwrap_err();
    assert!(heic.to_string().contains("JPEG"), "{heic}");
    let text = ingest(b"hello", &IngestOptions::default()).unwrap_err();
    assert!(text.to_string().contains("JPEG, PNG or WebP"), "{text}");
}

#[test]
fn a_decompression_bomb_is_refused_without_allocating_it() {
    let bomb = png_claiming(50_000, 50_000);
    assert!(bomb.len() < 2_000);
    let (result, peak) = peak_heap(|| ingest(&bomb, &IngestOptions::default()));
    assert!(matches!(result, Err(IngestError::TooLarge { width: 50_000, height: 50_000, .. })));
    // Decoding it would take 10 GB; refusing it takes next to nothing.
    assert!(peak < 1 << 20, "refusing the bomb took {peak} bytes of heap");
}

#[test]
fn peak_memory_of_one_ingest_is_one_decoded_image_plus_the_resizer() {
    let (w, h) = (4000u64, 3000u64);
    let source = jpeg(Jpeg::Rgb(&photo_like(w as u32, h as u32)), false, Some(1), false);
    let (photo, peak) = peak_heap(|| ingest(&source, &IngestOptions::default()).unwrap());
    assert_eq!((photo.full.width, photo.full.height), (1600, 1200));
    // The decoded image (3 bytes a pixel), the resizer's intermediate (output width × source
    // height) and the output, plus 10% and 4 MB for buffers that scale with neither.
    let decoded = w * h * 3;
    let intermediate = 1600 * h * 3;
    let output = 1600 * 1200 * 3;
    let bound = (decoded + intermediate + output) * 11 / 10 + (4 << 20);
    eprintln!("one 12 MP ingest: peak heap {} MB (bound {} MB)", peak >> 20, bound >> 20);
    assert!(peak <= bound, "one 12 MP ingest held {} MB; the bound is {} MB", peak >> 20, bound >> 20);
    // And it is not just a loose bound: the image itself must have been decoded once.
    assert!(peak >= decoded, "peak {peak} below one decoded image");
}

// ----- the store -----------------------------------------------------------------------------------------

#[test]
fn adding_photos_stores_files_rows_and_document_entries_in_one_action() {
    let f = fixture();
    let ctx = f.store.context(t(10));
    let source = jpeg(Jpeg::Rgb(&photo_like(2400, 1800)), false, Some(1), false);
    let outbox = f.store.outbox_len().unwrap();
    let gps = GeoPoint { lat: 30.7057, lon: 121.0153, accuracy_m: Some(8.0) };
    let (photo, entry) = f
        .store
        .add_photo_file(
            &ctx,
            &f.request,
            &source,
            &IngestOptions::default(),
            &Attachment { role: Role::Before, caption: Some("  村道路灯不亮  ".into()), gps: Some(gps) },
        )
        .unwrap();
    assert_eq!(entry.caption.as_deref(), Some("村道路灯不亮"), "the caption is trimmed");
    assert_eq!(entry.added_by, "wang-li");
    assert_eq!(entry.added_at, t(10));
    assert_eq!(entry.gps, Some(gps), "the position the user allowed is in the record");
    assert_eq!(f.store.outbox_len().unwrap(), outbox + 1, "one change to send");

    // The files are content-addressed beside the store, and are what their names say.
    let hash = &photo.full.hash;
    assert_eq!(hash, &content_hash(&photo.full.bytes));
    let path = f.store.photo_path(hash).unwrap();
    assert_eq!(path, f.dir.path().join("walker.gridwalk-blobs").join(&hash[..2]).join(&hash[2..]));
    assert_eq!(std::fs::read(&path).unwrap(), photo.full.bytes);
    assert_eq!(f.store.thumbnail_bytes(hash).unwrap(), photo.thumb.bytes);
    assert_eq!(blob_files(&f.store).len(), 2, "the photo and its thumbnail, no temporary files");
    let row = f.store.stored_photo(hash).unwrap().unwrap();
    assert_eq!((row.width, row.height, row.bytes), (1600, 1200, photo.full.bytes.len() as u64));
    assert_eq!((row.thumb_width, row.thumb_height), (320, 240));
    assert_eq!(row.acknowledged_at, None);
    assert_eq!(f.store.unacknowledged_photos().unwrap(), vec![hash.clone()]);

    // The same photo again, as the "after" photo, and another photo on the visit: one more
    // entry each, but the files of the first are stored once.
    f.store
        .add_photo(
            &f.store.context(t(20)),
            &f.request,
            &photo,
            &Attachment { role: Role::After, caption: None, gps: None },
        )
        .unwrap();
    let other = jpeg(Jpeg::Rgb(&quadrants(800, 600)), false, None, false);
    f.store.add_photo_file(&f.store.context(t(30)), &f.visit, &other, &IngestOptions::default(), &before("")).unwrap();
    assert_eq!(photo_rows(&f.store), 2);
    assert_eq!(blob_files(&f.store).len(), 4);
    let on_request = f.store.photos_of(&f.request).unwrap();
    assert_eq!(on_request.iter().map(|p| p.role).collect::<Vec<_>>(), vec![Role::Before, Role::After]);
    let on_visit = f.store.photos_of(&f.visit).unwrap();
    assert_eq!(on_visit.len(), 1);
    assert_eq!(on_visit[0].caption, None, "an empty caption is no caption");

    // The documents still index and check as before.
    let report = f.store.check().unwrap();
    assert!(report.index_matches_documents);

    // Reopening the store finds everything. The photo table arrived with schema version 3.
    let path = f.store.path().to_path_buf();
    drop(f.store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.photos_of(&f.request).unwrap().len(), 2);
    let version: i64 = store.connection().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert!(version >= 3, "the store is at schema version {version}");
}

#[test]
fn attaching_to_an_unknown_record_changes_nothing() {
    let f = fixture();
    let source = jpeg(Jpeg::Rgb(&quadrants(200, 100)), false, None, false);
    let err = f
        .store
        .add_photo_file(&f.store.context(t(1)), "no-such-request", &source, &IngestOptions::default(), &before("x"))
        .unwrap_err();
    assert_eq!(err.code(), "not_found");
    let photo = ingest(&source, &IngestOptions::default()).unwrap();
    let err = f.store.add_photo(&f.store.context(t(1)), "no-such-request", &photo, &before("x")).unwrap_err();
    assert_eq!(err.code(), "not_found");
    assert_eq!(photo_rows(&f.store), 0);
    assert_eq!(blob_files(&f.store), Vec::<String>::new());
}

#[test]
fn removing_a_photo_keeps_it_in_the_history() {
    let f = fixture();
    let source = jpeg(Jpeg::Rgb(&quadrants(200, 100)), false, None, false);
    let (photo, _) = f
        .store
        .add_photo_file(&f.store.context(t(1)), &f.request, &source, &IngestOptions::default(), &before("wrong lane"))
        .unwrap();
    let removed = f.store.remove_photo(&f.store.context(t(2)), &f.request, &photo.full.hash, None).unwrap();
    assert_eq!(removed, 1);
    let entries = f.store.photos_of(&f.request).unwrap();
    assert_eq!(entries.len(), 1, "the entry stays");
    assert!(entries[0].removed);
    assert_eq!(entries[0].removed_by.as_deref(), Some("wang-li"));
    assert_eq!(entries[0].removed_at, Some(t(2)));
    assert_eq!(entries[0].caption.as_deref(), Some("wrong lane"));

    // Removing it again, or a photo that was never there, is refused.
    let again = f.store.remove_photo(&f.store.context(t(3)), &f.request, &photo.full.hash, None).unwrap_err();
    assert_eq!(again.code(), "photo_not_attached");
    let bad = f.store.remove_photo(&f.store.context(t(3)), &f.request, "not-a-hash", None).unwrap_err();
    assert_eq!(bad.code(), "photo_bad_id");
}

#[test]
fn first_photos_added_on_two_phones_at_once_are_both_kept() {
    let f = fixture();
    let base = f.store.document_bytes(&f.request).unwrap();
    let entry = |hash: &str, by: &str, minute: i64| attach::PhotoRef {
        hash: hash.into(),
        role: Role::Before,
        caption: None,
        added_at: t(minute),
        added_by: by.into(),
        gps: None,
        removed: false,
        removed_at: None,
        removed_by: None,
    };
    let mut a = automerge::AutoCommit::load(&base).unwrap().with_actor(automerge::ActorId::from(b"phone-a".as_slice()));
    let mut b = automerge::AutoCommit::load(&base).unwrap().with_actor(automerge::ActorId::from(b"phone-b".as_slice()));
    attach::attach(&mut a, &entry(&"a".repeat(64), "walker-a", 1)).unwrap();
    attach::attach(&mut b, &entry(&"b".repeat(64), "walker-b", 2)).unwrap();
    a.commit();
    b.commit();
    a.merge(&mut b).unwrap();
    let merged = attach::photos(&DocView::new(&a)).unwrap();
    assert_eq!(merged.iter().map(|p| p.added_by.as_str()).collect::<Vec<_>>(), vec!["walker-a", "walker-b"]);
    // Removing works on whichever list holds the entry.
    assert_eq!(attach::mark_removed(&mut a, &"b".repeat(64), None, t(3), "hall").unwrap(), 1);
    assert_eq!(attach::live_photos(&DocView::new(&a)).unwrap().len(), 1);

    // And through the store, as sync would deliver it.
    f.store.apply_remote(&f.request, &a.save()).unwrap();
    assert_eq!(f.store.photos_of(&f.request).unwrap().len(), 2);
}

#[test]
fn garbage_collection_waits_for_the_relay_and_spares_what_documents_need() {
    let f = fixture();
    let opts = IngestOptions::default();
    let add = |minute: i64, img: &RgbImage, doc: &str, role: Role| {
        let bytes = jpeg(Jpeg::Rgb(img), false, None, false);
        f.store
            .add_photo_file(
                &f.store.context(t(minute)),
                doc,
                &bytes,
                &opts,
                &Attachment { role, caption: None, gps: None },
            )
            .unwrap()
            .0
    };
    let kept = add(1, &quadrants(400, 200), &f.request, Role::Before);
    let dropped = add(2, &quadrants(200, 400), &f.request, Role::Before);
    let evidence = add(3, &photo_like(600, 400), &f.request, Role::After);
    // The fix is resolved with the "after" photo as evidence; then that photo's entry is removed.
    let ctx = f.store.context(t(4));
    f.store.act(&ctx, &f.request, Action::Triaged { decision: TriageDecision::Accept }).unwrap();
    f.store
        .act(
            &ctx,
            &f.request,
            Action::Resolved { note: "装了太阳能路灯".into(), photos: vec![evidence.full.hash.clone()] },
        )
        .unwrap();
    for photo in [&dropped, &evidence] {
        f.store.remove_photo(&f.store.context(t(5)), &f.request, &photo.full.hash, None).unwrap();
    }
    // A stray file from an action that never committed, and an interrupted write.
    let stray = b"left over".to_vec();
    let stray_hash = content_hash(&stray);
    let stray_path = f.store.photo_path(&stray_hash).unwrap();
    std::fs::create_dir_all(stray_path.parent().unwrap()).unwrap();
    std::fs::write(&stray_path, &stray).unwrap();
    std::fs::write(stray_path.parent().unwrap().join(".tmp-interrupted"), b"half").unwrap();

    // Nothing has reached the relay: only the strays go.
    let report = f.store.collect_garbage().unwrap();
    assert_eq!(report.deleted, Vec::<String>::new());
    assert_eq!(report.kept_unacknowledged, vec![dropped.full.hash.clone()]);
    assert_eq!(report.stray_files_removed, 2);
    assert_eq!(blob_files(&f.store).len(), 6);

    // The relay acknowledges everything: the removed photo goes; the kept one and the evidence
    // named by the `Resolved` event stay.
    for photo in [&kept, &dropped, &evidence] {
        assert!(f.store.mark_blob_acknowledged(&photo.full.hash, t(60)).unwrap());
    }
    assert!(!f.store.mark_blob_acknowledged(&"0".repeat(64), t(60)).unwrap());
    assert!(f.store.mark_blob_acknowledged(&kept.full.hash, t(90)).unwrap());
    assert_eq!(f.store.stored_photo(&kept.full.hash).unwrap().unwrap().acknowledged_at, Some(t(60)));
    assert_eq!(f.store.unacknowledged_photos().unwrap(), Vec::<String>::new());

    let report = f.store.collect_garbage().unwrap();
    assert_eq!(report.deleted, vec![dropped.full.hash.clone()]);
    assert_eq!(report.bytes_freed, (dropped.full.bytes.len() + dropped.thumb.bytes.len()) as u64);
    assert_eq!(f.store.stored_photo(&dropped.full.hash).unwrap(), None);
    assert!(matches!(f.store.photo_bytes(&dropped.full.hash), Err(PhotoError::BlobMissing { .. })));
    assert_eq!(f.store.photo_bytes(&kept.full.hash).unwrap(), kept.full.bytes);
    assert_eq!(f.store.photo_bytes(&evidence.full.hash).unwrap(), evidence.full.bytes);
    assert_eq!(blob_files(&f.store).len(), 4);
    // A second run finds nothing more to do.
    assert_eq!(f.store.collect_garbage().unwrap(), Default::default());
}

#[test]
fn a_request_exports_with_its_photos() {
    let f = fixture();
    let opts = IngestOptions::default();
    let (first, _) = f
        .store
        .add_photo_file(
            &f.store.context(t(1)),
            &f.request,
            &jpeg(Jpeg::Rgb(&quadrants(200, 100)), false, None, false),
            &opts,
            &before("路灯坏了"),
        )
        .unwrap();
    let (second, _) = f
        .store
        .add_photo_file(
            &f.store.context(t(2)),
            &f.request,
            &jpeg(Jpeg::Rgb(&photo_like(300, 200)), false, None, false),
            &opts,
            &Attachment { role: Role::After, caption: Some("修好了".into()), gps: None },
        )
        .unwrap();
    let out = f.dir.path().join("export");
    let export = f.store.export_request_with_photos(&f.store.context(t(40)), &f.request, &out).unwrap();
    assert_eq!(export.missing, Vec::<String>::new());
    let files: Vec<String> = export.photos.iter().map(|p| p.file.clone().unwrap()).collect();
    assert_eq!(
        files,
        vec![format!("01-before-{}.jpg", &first.full.hash[..12]), format!("02-after-{}.jpg", &second.full.hash[..12])]
    );
    for (file, photo) in files.iter().zip([&first, &second]) {
        let bytes = std::fs::read(out.join(file)).unwrap();
        assert_eq!(content_hash(&bytes), photo.full.hash);
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("request.json")).unwrap()).unwrap();
    assert_eq!(json["request"]["header"]["id"], f.request.as_str());
    assert_eq!(json["photos"][1]["caption"], "修好了");
    assert_eq!(json["photos"][1]["role"], "after");
    let doc = automerge::AutoCommit::load(&std::fs::read(out.join("request.automerge")).unwrap()).unwrap();
    assert_eq!(attach::photos(&DocView::new(&doc)).unwrap().len(), 2);

    // A folder with something in it is not overwritten.
    let err = f.store.export_request_with_photos(&f.store.context(t(41)), &f.request, &out).unwrap_err();
    assert_eq!(err.code(), "invalid_input");
}

// ----- photos received by sync --------------------------------------------------------------------------

/// A second device's store beside the fixture's, with the same areas (as the hall's would be).
fn other_device(f: &Fixture, name: &str) -> Store {
    let store = Store::create(
        f.dir.path().join(format!("{name}.gridwalk")),
        Identity { device: name.into(), walker: "hall-1".into() },
    )
    .unwrap();
    for (id, kind, parent) in [
        ("caoqiao", AreaKind::Town, None),
        ("mashe", AreaKind::Village, Some("caoqiao")),
        ("mashe-1", AreaKind::Grid, Some("mashe")),
    ] {
        store
            .put_area(&Area {
                id: id.into(),
                kind,
                name: id.into(),
                parent: parent.map(str::to_string),
                enterprise_grid: false,
            })
            .unwrap();
    }
    store
}

#[test]
fn a_document_merged_in_names_the_photos_this_device_still_needs() {
    let f = fixture();
    let source = jpeg(Jpeg::Rgb(&photo_like(900, 600)), false, None, false);
    let (photo, _) = f
        .store
        .add_photo_file(&f.store.context(t(1)), &f.request, &source, &IngestOptions::default(), &before("灯杆"))
        .unwrap();
    assert!(f.store.wanted_photos().unwrap().is_empty(), "the phone that took it has it");

    let hall = other_device(&f, "hall");
    hall.apply_remote(&f.request, &f.store.document_bytes(&f.request).unwrap()).unwrap();
    assert_eq!(hall.wanted_photos().unwrap(), vec![photo.full.hash.clone()]);

    // Stored as received: the same bytes under the same id, a thumbnail made here, and the
    // relay's time as its acknowledgement, so it is never uploaded back.
    let stored = hall.store_received_photo(&photo.full.hash, &photo.full.bytes, t(30)).unwrap();
    assert_eq!(
        (stored.width, stored.height, stored.bytes),
        (photo.full.width, photo.full.height, photo.full.bytes.len() as u64)
    );
    assert_eq!(stored.acknowledged_at, Some(t(30)));
    assert_eq!(hall.photo_bytes(&photo.full.hash).unwrap(), photo.full.bytes);
    let thumb = decode(&hall.thumbnail_bytes(&photo.full.hash).unwrap());
    assert_eq!((thumb.width(), thumb.height()), (photo.thumb.width, photo.thumb.height));
    assert!(mad(&thumb.to_rgb8(), &decode(&photo.thumb.bytes).to_rgb8()) < 3.0, "the thumbnail shows the same picture");
    assert!(hall.wanted_photos().unwrap().is_empty());
    assert!(hall.unacknowledged_photos().unwrap().is_empty());
    // Receiving it again changes nothing.
    assert_eq!(
        hall.store_received_photo(&photo.full.hash, &photo.full.bytes, t(40)).unwrap().acknowledged_at,
        Some(t(30))
    );

    // A removed entry is no longer needed on a device, but the relay still lets it travel: the
    // record names it.
    f.store.remove_photo(&f.store.context(t(2)), &f.request, &photo.full.hash, None).unwrap();
    let doc = automerge::AutoCommit::load(&f.store.document_bytes(&f.request).unwrap()).unwrap();
    assert!(attach::referenced_hashes(&DocView::new(&doc)).unwrap().is_empty());
    assert_eq!(attach::blob_references(&DocView::new(&doc)).unwrap(), vec![photo.full.hash.clone()]);
}

#[test]
fn received_bytes_that_are_not_the_named_photo_are_refused_and_nothing_is_stored() {
    let f = fixture();
    let hall = other_device(&f, "hall");
    let jpeg_bytes = jpeg(Jpeg::Rgb(&quadrants(64, 48)), false, None, false);
    let png = png_rgba(&image::RgbaImage::from_pixel(40, 30, image::Rgba([1, 2, 3, 255])));
    let bomb = png_claiming(50_000, 50_000);
    let cases: Vec<(&str, String, Vec<u8>, &str)> = vec![
        ("bytes under another id", content_hash(b"something else"), jpeg_bytes.clone(), "photo_corrupt"),
        ("a PNG is not a stored photo", content_hash(&png), png, "photo_unsupported_format"),
        ("a decompression bomb under its own id", content_hash(&bomb), bomb, "photo_unsupported_format"),
        (
            "a cut-off JPEG",
            content_hash(&jpeg_bytes[..jpeg_bytes.len() / 2]),
            jpeg_bytes[..jpeg_bytes.len() / 2].to_vec(),
            "photo_damaged",
        ),
        ("not an id", "../../etc/passwd".into(), jpeg_bytes.clone(), "photo_bad_id"),
    ];
    for (what, hash, bytes, code) in cases {
        let err = hall.store_received_photo(&hash, &bytes, t(1)).unwrap_err();
        assert_eq!(err.code(), code, "{what}: {err}");
    }
    assert!(blob_files(&hall).is_empty());
    assert_eq!(photo_rows(&hall), 0);
}

#[test]
fn a_store_from_before_photo_sync_learns_which_photos_it_lacks_when_upgraded() {
    let f = fixture();
    let source = jpeg(Jpeg::Rgb(&quadrants(300, 200)), false, None, false);
    let (photo, _) = f
        .store
        .add_photo_file(&f.store.context(t(1)), &f.request, &source, &IngestOptions::default(), &before("x"))
        .unwrap();
    let hall = other_device(&f, "hall");
    hall.apply_remote(&f.request, &f.store.document_bytes(&f.request).unwrap()).unwrap();
    drop(hall);
    // A store at version 4 (before photo sync) holding that document: its identity and its
    // document rows copied from the hall's store, which has no list of wanted photos yet.
    let old = f.dir.path().join("old.gridwalk");
    {
        let mut conn = rusqlite::Connection::open(&old).unwrap();
        gridwalk_core::store::schema::migrations().to_version(&mut conn, 4).unwrap();
        conn.execute("ATTACH DATABASE ?1 AS src", [f.dir.path().join("hall.gridwalk").to_str().unwrap()]).unwrap();
        for table in ["meta", "documents", "doc_chunks"] {
            conn.execute(&format!("INSERT INTO main.{table} SELECT * FROM src.{table}"), []).unwrap();
        }
        conn.execute("DETACH DATABASE src", []).unwrap();
    }
    let upgraded = Store::open(&old).unwrap();
    assert_eq!(upgraded.wanted_photos().unwrap(), vec![photo.full.hash]);
}

/// Regression: an accepted 8000 × 8000 PNG peaked at 316 MB, more than a cheap phone can spare.
/// Now no accepted photo may need more than about 150 MB (`gridwalk-bench photo` prints the
/// peaks): over 24 MP is refused, and deeper pixels are held to fewer, each before decoding and
/// with the limit in the message.
#[test]
fn photos_that_would_need_more_memory_than_a_cheap_phone_has_are_refused_before_decoding() {
    for (w, h, depth, limit) in [(8000u32, 8000u32, 8u8, 24u64), (6001, 4000, 8, 24), (4000, 3500, 16, 12)] {
        let png = png_claiming_depth(w, h, depth);
        let (result, peak) = peak_heap(|| ingest(&png, &IngestOptions::default()));
        match result {
            Err(e @ IngestError::TooLarge { .. }) => {
                assert!(e.to_string().contains(&format!("{limit} megapixels")), "{w}×{h}×{depth}: {e}");
            }
            other => panic!("{w}×{h} at {depth} bits: {other:?}"),
        }
        assert!(peak < 1 << 20, "refusing it took {peak} bytes of heap");
    }
}

// ----- the instant save: photos saved with the record, processed in the background ----------------

fn new_request(f: &Fixture) -> NewRequest {
    NewRequest {
        id: None,
        grid: "mashe-1".into(),
        micro_grid: None,
        reporter: Reporter::Anonymous,
        address: "马厩村 3 组 桥头".into(),
        gps: None,
        category: "streetlight".into(),
        description: "桥头路灯坏了".into(),
        urgency: Urgency::Normal,
        source: Source::Visit,
        visit: Some(f.visit.clone()),
    }
}

fn queued<'a>(name: &str, bytes: &'a [u8]) -> PhotoToQueue<'a> {
    PhotoToQueue { file_name: name.into(), role: Role::Before, bytes, gps: None }
}

fn request_count(store: &Store) -> i64 {
    store.connection().query_row("SELECT COUNT(*) FROM request_index", [], |r| r.get(0)).unwrap()
}

#[test]
fn a_request_with_photos_is_saved_at_once_and_its_photos_attached_in_the_background_even_after_a_restart() {
    let f = fixture();
    let camera = jpeg(Jpeg::Rgb(&photo_like(2400, 1800)), false, Some(6), false);
    let screenshot = png_rgba(&image::RgbaImage::from_pixel(300, 200, image::Rgba([200, 30, 30, 255])));
    let outbox = f.store.outbox_len().unwrap();
    let ctx = f.store.context(t(10));
    let (id, waiting) = f
        .store
        .raise_request_with_photos(
            &ctx,
            new_request(&f),
            &[queued("IMG_2031.jpg", &camera), queued("DCIM/Screenshot 1.png", &screenshot)],
            &IngestOptions::default(),
        )
        .unwrap();
    // Saved: the record, its index row and its outbox entry (and the visit's), nothing attached.
    assert_eq!(f.store.request(&id).unwrap().body.description, "桥头路灯坏了");
    assert!(f.store.outbox_len().unwrap() > outbox);
    assert!(f.store.photos_of(&id).unwrap().is_empty());
    assert_eq!(waiting.iter().map(|w| w.file_name.as_str()).collect::<Vec<_>>(), ["IMG_2031.jpg", "Screenshot 1.png"]);
    assert!(waiting.iter().all(|w| w.state == QueuedPhotoState::Processing && w.queued_at == t(10)));
    assert_eq!(f.store.photo_queue_counts().unwrap(), PhotoQueueCounts { processing: 2, failed: 0 });

    // The app is killed before the worker ran: the photos wait in the store file.
    let path = f.store.path().to_path_buf();
    drop(f.store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.queued_photos(&id).unwrap(), waiting);

    // The worker attaches them one by one, as done at the tap, by the walker who tapped.
    let mut attached = Vec::new();
    while let Some(next) = store.next_queued_photo().unwrap() {
        match store.process_queued_photo(next, &IngestOptions::default()).unwrap() {
            PhotoProcessed::Attached(entry) => attached.push(entry),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(attached.len(), 2);
    let photos = store.photos_of(&id).unwrap();
    assert_eq!(photos, attached);
    assert!(photos.iter().all(|p| p.added_at == t(10) && p.added_by == "wang-li" && p.role == Role::Before));
    let first = store.stored_photo(&photos[0].hash).unwrap().unwrap();
    // EXIF orientation 6 turned the landscape camera file upright, shrunk to 1600 px.
    assert_eq!((first.width, first.height), (1200, 1600));
    assert!(store.queued_photos(&id).unwrap().is_empty());
    assert_eq!(store.photo_queue_counts().unwrap(), PhotoQueueCounts::default());
    assert!(store.check().unwrap().index_matches_documents);
}

#[test]
fn a_photo_refused_at_the_tap_names_its_file_and_saves_nothing() {
    let f = fixture();
    let good = jpeg(Jpeg::Rgb(&photo_like(400, 300)), false, None, false);
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic\0\0\0\x08free".to_vec();
    let (requests, outbox) = (request_count(&f.store), f.store.outbox_len().unwrap());
    let err = f
        .store
        .raise_request_with_photos(
            &f.store.context(t(10)),
            new_request(&f),
            &[queued("a.jpg", &good), queued("IMG_0042.HEIC", &heic)],
            &IngestOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.code(), "photo_unsupported_format");
    assert!(err.to_string().starts_with("IMG_0042.HEIC: HEIC images are not supported"), "{err}");
    assert_eq!((request_count(&f.store), f.store.outbox_len().unwrap()), (requests, outbox));
    assert_eq!(f.store.photo_queue_counts().unwrap(), PhotoQueueCounts::default());
}

#[test]
fn a_photo_damaged_inside_fails_in_the_background_and_can_be_retried_or_discarded() {
    let f = fixture();
    let mut damaged = png_rgba(&image::RgbaImage::from_pixel(300, 200, image::Rgba([10, 200, 30, 255])));
    // Spoil the compressed pixels but not the header: the tap's checks pass, decoding fails.
    let idat = damaged.windows(4).position(|w| w == b"IDAT").unwrap();
    for b in &mut damaged[idat + 6..idat + 12] {
        *b ^= 0x5A;
    }
    let good = jpeg(Jpeg::Rgb(&photo_like(400, 300)), false, None, false);
    let ctx = f.store.context(t(10));
    let (id, waiting) = f
        .store
        .raise_request_with_photos(
            &ctx,
            new_request(&f),
            &[queued("bad.png", &damaged), queued("good.jpg", &good)],
            &IngestOptions::default(),
        )
        .unwrap();
    let options = IngestOptions::default();
    match f.store.process_queued_photo(waiting[0].id, &options).unwrap() {
        PhotoProcessed::Failed(e) => assert_eq!(e.code(), "photo_damaged", "{e}"),
        other => panic!("{other:?}"),
    }
    // The failed one no longer blocks the line; the good one goes through.
    assert_eq!(f.store.next_queued_photo().unwrap(), Some(waiting[1].id));
    assert!(matches!(f.store.process_queued_photo(waiting[1].id, &options).unwrap(), PhotoProcessed::Attached(_)));
    assert_eq!(f.store.next_queued_photo().unwrap(), None);
    let left = f.store.queued_photos(&id).unwrap();
    assert_eq!(left.len(), 1);
    assert!(
        matches!(&left[0].state, QueuedPhotoState::Failed { code, message } if code == "photo_damaged" && message.contains("PNG"))
    );
    assert_eq!(f.store.photo_queue_counts().unwrap(), PhotoQueueCounts { processing: 0, failed: 1 });

    // A retry puts it back in line (and fails again, counted); discarding removes it for good.
    assert!(f.store.retry_queued_photo(left[0].id).unwrap());
    assert_eq!(f.store.next_queued_photo().unwrap(), Some(left[0].id));
    assert!(matches!(f.store.process_queued_photo(left[0].id, &options).unwrap(), PhotoProcessed::Failed(_)));
    assert_eq!(f.store.queued_photos(&id).unwrap()[0].attempts, 2);
    assert!(f.store.discard_queued_photo(left[0].id).unwrap());
    assert!(!f.store.discard_queued_photo(left[0].id).unwrap());
    assert!(matches!(f.store.process_queued_photo(left[0].id, &options).unwrap(), PhotoProcessed::Gone));
    assert_eq!(f.store.photos_of(&id).unwrap().len(), 1);
    assert_eq!(f.store.photo_queue_counts().unwrap(), PhotoQueueCounts::default());
}

#[test]
fn an_after_photo_queued_for_an_unknown_record_is_refused() {
    let f = fixture();
    let good = jpeg(Jpeg::Rgb(&photo_like(400, 300)), false, None, false);
    let err = f
        .store
        .queue_photo(&f.store.context(t(10)), "no-such-request", &queued("a.jpg", &good), &IngestOptions::default())
        .unwrap_err();
    assert_eq!(err.code(), "not_found", "{err}");
    let waiting = f
        .store
        .queue_photo(&f.store.context(t(10)), &f.request, &queued("a.jpg", &good), &IngestOptions::default())
        .unwrap();
    assert_eq!(f.store.queued_photos(&f.request).unwrap(), vec![waiting]);
}
