//! Turning whatever the camera or the gallery hands over into the two JPEGs we keep: the photo
//! codecs, apart from the store, so nothing else links them.
//!
//! The order of the steps is chosen for a cheap phone:
//! 1. The format is recognised from the first bytes, so a HEIC photo or a renamed text file is
//!    refused with a clear message before any decoder runs.
//! 2. Only the header is read, and an image over the pixel limit is refused before a single pixel
//!    buffer is allocated (a 50,000 × 50,000 PNG is a few hundred bytes but would need 7.5 GB).
//! 3. The pixels are decoded once into one buffer, alpha is flattened on white in place, and the
//!    buffer is resized straight away and dropped. Peak memory is therefore about one decoded
//!    image (3 bytes a pixel, 4 for a PNG with alpha) plus the much smaller output.
//! 4. The EXIF orientation is applied to the small resized image, not to the decoded one: the
//!    same result, at a fraction of the memory and time.
//! 5. The output is encoded fresh, so none of the source's metadata (EXIF, XMP, GPS, the phone's
//!    serial number, ICC profiles) can reach it.

use std::io::Cursor;

use fast_image_resize::images::{Image as ResizeImage, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::metadata::Orientation;
use image::{ColorType, DynamicImage, ImageBuffer, ImageDecoder, Luma, Rgb};
use sha2::{Digest, Sha256};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace as ZuneColorSpace;
use zune_core::options::DecoderOptions;

/// What can go wrong turning a file into a photo. Messages are in English and say what the
/// user can do; the app translates them by [`IngestError::code`], which never changes once
/// released (the core's `PhotoError` carries each of these under the same code).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the file is empty (0 bytes): choose the photo again, or take it again")]
    Empty,

    #[error("this file is not an image (it contains {looks_like}): choose a photo in JPEG, PNG or WebP format")]
    NotAnImage { looks_like: &'static str },

    #[error("{format} images are not supported: {advice}")]
    UnsupportedFormat {
        /// The format's common name, e.g. "HEIC".
        format: String,
        advice: &'static str,
    },

    #[error(
        "the {format} image is {width} × {height} pixels, more than the {limit_megapixels} megapixels \
         a photo may have: take the photo at a lower resolution or shrink it first"
    )]
    TooLarge { format: &'static str, width: u64, height: u64, limit_megapixels: u64 },

    #[error(
        "the {format} file is damaged or incomplete ({detail}): copy it again from the camera, or take the photo again"
    )]
    Damaged { format: &'static str, detail: String },

    #[error("not enough memory to open this {width} × {height} image: close other apps and try again")]
    OutOfMemory { width: u32, height: u32 },

    #[error("could not write the photo as JPEG: {0}")]
    Encode(String),

    #[error("invalid photo settings: {0}")]
    InvalidOptions(String),
}

impl IngestError {
    /// A short, stable code for the app and CLI boundary.
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::Empty => "photo_empty",
            IngestError::NotAnImage { .. } => "photo_not_an_image",
            IngestError::UnsupportedFormat { .. } => "photo_unsupported_format",
            IngestError::TooLarge { .. } => "photo_too_large",
            IngestError::Damaged { .. } => "photo_damaged",
            IngestError::OutOfMemory { .. } => "photo_out_of_memory",
            IngestError::Encode(_) => "photo_encode",
            IngestError::InvalidOptions(_) => "invalid_input",
        }
    }
}

/// How photos are shrunk and encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestOptions {
    /// The longer side of the stored photo, in pixels. Smaller photos are not enlarged.
    pub max_long_side: u32,
    /// The longer side of the thumbnail shown in lists.
    pub thumb_long_side: u32,
    /// JPEG quality, 1 to 100.
    pub quality: u8,
    /// The largest source image accepted, in pixels (width × height). Decoding needs about three
    /// bytes a pixel, so this is what bounds the memory one ingest can take.
    pub max_pixels: u64,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            max_long_side: 1600,
            thumb_long_side: 320,
            quality: 80,
            // A cheap phone has little memory: no accepted photo may take more than about 150 MB
            // to ingest (`gridwalk-bench photo` prints the peak of a 12 MP JPEG and of the largest
            // PNG accepted). 24 MP is twice what phones save by default (12 MP, binned from their
            // 48–50 MP sensors); a full-resolution 50 MP shot is refused with a clear message
            // saying to take it at the phone's normal size. Deeper pixels are bounded apart, by
            // `MAX_DECODED_BYTES`.
            max_pixels: 24_000_000,
        }
    }
}

impl IngestOptions {
    fn validate(&self) -> Result<(), IngestError> {
        let bad = |m: String| Err(IngestError::InvalidOptions(m));
        if !(16..=8192).contains(&self.max_long_side) {
            return bad(format!("the long side must be 16 to 8192 pixels, not {}", self.max_long_side));
        }
        if !(16..=self.max_long_side).contains(&self.thumb_long_side) {
            return bad(format!(
                "the thumbnail's long side must be 16 to {} pixels, not {}",
                self.max_long_side, self.thumb_long_side
            ));
        }
        if !(1..=100).contains(&self.quality) {
            return bad(format!("the JPEG quality must be 1 to 100, not {}", self.quality));
        }
        if self.max_pixels == 0 {
            return bad("the pixel limit must not be zero".into());
        }
        Ok(())
    }
}

/// The formats we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Jpeg,
    Png,
    WebP,
}

impl SourceFormat {
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Jpeg => "JPEG",
            SourceFormat::Png => "PNG",
            SourceFormat::WebP => "WebP",
        }
    }
}

/// One encoded JPEG and its content id.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedJpeg {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// SHA-256 of `bytes`, lowercase hex.
    pub hash: String,
}

/// What ingest made of one source file: the photo, its thumbnail and what the source was.
#[derive(Debug, Clone)]
pub struct IngestedPhoto {
    pub full: EncodedJpeg,
    pub thumb: EncodedJpeg,
    pub source_format: SourceFormat,
    /// The source's stored size, before the orientation was applied.
    pub source_width: u32,
    pub source_height: u32,
    /// The EXIF orientation found in the source (1 to 8; 1 when it had none).
    pub source_orientation: u8,
}

/// SHA-256 of `bytes` as lowercase hex: the id of a stored photo.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Decodes, orients, shrinks and re-encodes one photo. Touches no disk and no store: the result
/// is stored by the core's `Store::add_photo`.
pub fn ingest(bytes: &[u8], options: &IngestOptions) -> Result<IngestedPhoto, IngestError> {
    options.validate()?;
    let format = sniff(bytes)?;
    let decoded = match format {
        SourceFormat::Jpeg => decode_jpeg(bytes, options)?,
        SourceFormat::Png => {
            let decoder = image::codecs::png::PngDecoder::new(Cursor::new(bytes)).map_err(|e| damaged(format, e))?;
            decode_with_image(decoder, format, options)?
        }
        SourceFormat::WebP => {
            let decoder = image::codecs::webp::WebPDecoder::new(Cursor::new(bytes)).map_err(|e| damaged(format, e))?;
            decode_with_image(decoder, format, options)?
        }
    };
    let Decoded { pixels, width: source_width, height: source_height, gray, orientation } = decoded;

    let (full_w, full_h) = fit(source_width, source_height, options.max_long_side);
    // The decoded image is dropped as soon as the small one exists.
    let small = match resize(&pixels, source_width, source_height, full_w, full_h, gray)? {
        Some(small) => small,
        None => pixels,
    };
    let upright = orient(small, full_w, full_h, gray, orientation);
    let (up_w, up_h) = (upright.width(), upright.height());

    let (thumb_w, thumb_h) = fit(up_w, up_h, options.thumb_long_side);
    let thumb_pixels = resize(upright.as_bytes(), up_w, up_h, thumb_w, thumb_h, gray)?;
    let full = encode(upright.as_bytes(), up_w, up_h, gray, options.quality)?;
    let thumb = match &thumb_pixels {
        Some(pixels) => encode(pixels, thumb_w, thumb_h, gray, options.quality)?,
        // A photo no larger than a thumbnail is its own thumbnail: the same bytes, one file.
        None => full.clone(),
    };
    Ok(IngestedPhoto {
        full,
        thumb,
        source_format: format,
        source_width,
        source_height,
        source_orientation: orientation.to_exif(),
    })
}

/// The checks that need only a file's first bytes and headers: is it an image of a format we
/// read, and is it small enough to decode? They take a millisecond, so a request is refused at
/// the tap for a video or a HEIC file, while the slow decoding runs later in the background
/// (and can still find a file damaged in its middle). Touches no disk.
pub fn precheck(bytes: &[u8], options: &IngestOptions) -> Result<SourceFormat, IngestError> {
    options.validate()?;
    let format = sniff(bytes)?;
    match format {
        SourceFormat::Jpeg => {
            let zopts =
                DecoderOptions::default().set_strict_mode(false).set_max_width(usize::MAX).set_max_height(usize::MAX);
            let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), zopts);
            decoder.decode_headers().map_err(|e| damaged(format, e))?;
            let (w, h) = decoder.dimensions().ok_or_else(|| damaged(format, "no frame header"))?;
            check_size(format, w as u32, h as u32, options)?;
            check_jpeg_complete(bytes).map_err(|detail| damaged(format, detail))?;
        }
        SourceFormat::Png => {
            let decoder = image::codecs::png::PngDecoder::new(Cursor::new(bytes)).map_err(|e| damaged(format, e))?;
            check_image_header(&decoder, format, options)?;
        }
        SourceFormat::WebP => {
            let decoder = image::codecs::webp::WebPDecoder::new(Cursor::new(bytes)).map_err(|e| damaged(format, e))?;
            check_image_header(&decoder, format, options)?;
        }
    }
    Ok(format)
}

/// A photo another device already ingested (received by sync): its size and a thumbnail made
/// here, since thumbnails stay on the device that shows them and never travel.
#[derive(Debug, Clone)]
pub struct ReceivedPhoto {
    pub width: u32,
    pub height: u32,
    pub thumb: EncodedJpeg,
}

/// Reads a stored-format photo (a JPEG this pipeline wrote, received from the relay) and makes
/// its thumbnail, leaving the photo's own bytes untouched: they are its id. The same guards as
/// [`ingest`] apply (only JPEG, the pixel limit checked before decoding), because the bytes come
/// from another device and a hostile one could send a decompression bomb under a valid id.
pub fn thumbnail_of_received(bytes: &[u8], options: &IngestOptions) -> Result<ReceivedPhoto, IngestError> {
    options.validate()?;
    let format = sniff(bytes)?;
    if format != SourceFormat::Jpeg {
        return Err(IngestError::UnsupportedFormat {
            format: format!("a stored photo in {}", format.name()),
            advice: "stored photos are always JPEG; sync again to fetch this photo from the service hall",
        });
    }
    let Decoded { pixels, width, height, gray, orientation } = decode_jpeg(bytes, options)?;
    if orientation == Orientation::NoTransforms && width.max(height) <= options.thumb_long_side {
        // As in `ingest`: a photo no larger than a thumbnail is its own thumbnail.
        return Ok(ReceivedPhoto {
            width,
            height,
            thumb: EncodedJpeg { bytes: bytes.to_vec(), width, height, hash: content_hash(bytes) },
        });
    }
    let (thumb_w, thumb_h) = fit(width, height, options.thumb_long_side);
    let small = resize(&pixels, width, height, thumb_w, thumb_h, gray)?.unwrap_or(pixels);
    let upright = orient(small, thumb_w, thumb_h, gray, orientation);
    let thumb = encode(upright.as_bytes(), upright.width(), upright.height(), gray, options.quality)?;
    Ok(ReceivedPhoto { width, height, thumb })
}

// ----- recognising the format ----------------------------------------------------------------------

const HEIC_ADVICE: &str = "set the camera to save photos as JPEG (on an iPhone: Settings › Camera › \
     Formats › Most Compatible), or share the photo as JPEG, then add it again";
const CONVERT_ADVICE: &str = "save or export the photo as JPEG, then add it again";

/// Recognises the format from the file's first bytes, never from its name.
fn sniff(bytes: &[u8]) -> Result<SourceFormat, IngestError> {
    if bytes.is_empty() {
        return Err(IngestError::Empty);
    }
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        return Ok(SourceFormat::Jpeg);
    }
    if starts(b"\x89PNG\r\n\x1a\n") {
        return Ok(SourceFormat::Png);
    }
    if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Ok(SourceFormat::WebP);
    }
    let unsupported =
        |format: &str, advice: &'static str| Err(IngestError::UnsupportedFormat { format: format.to_string(), advice });
    // ISO base media files (HEIC, AVIF, MP4, MOV) say what they are in their `ftyp` box.
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return match &bytes[8..12] {
            b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1" => {
                unsupported("HEIC", HEIC_ADVICE)
            }
            b"avif" | b"avis" => unsupported("AVIF", CONVERT_ADVICE),
            b"qt  " => unsupported("QuickTime video", "choose a photo, not a video"),
            _ => unsupported("MP4 video", "choose a photo, not a video"),
        };
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return unsupported("GIF", CONVERT_ADVICE);
    }
    if starts(b"BM") && bytes.len() >= 26 {
        return unsupported("BMP", CONVERT_ADVICE);
    }
    if starts(b"II*\0") || starts(b"MM\0*") {
        return unsupported("TIFF (or camera RAW)", CONVERT_ADVICE);
    }
    if starts(b"8BPS") {
        return unsupported("Photoshop (PSD)", CONVERT_ADVICE);
    }
    if starts(b"%PDF") {
        return unsupported("PDF", "take a photo of the page, or export the page as JPEG");
    }
    if starts(&[0xFF, 0x0A]) || starts(b"\0\0\0\x0cJXL \r\n\x87\n") {
        return unsupported("JPEG XL", CONVERT_ADVICE);
    }
    Err(IngestError::NotAnImage { looks_like: if looks_like_text(bytes) { "text" } else { "data of an unknown kind" } })
}

fn looks_like_text(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    // A multi-byte character cut at the end of the window is still text.
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    };
    valid && !head.iter().any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0C))
}

fn damaged(format: SourceFormat, e: impl std::fmt::Display) -> IngestError {
    IngestError::Damaged { format: format.name(), detail: e.to_string() }
}

fn check_size(format: SourceFormat, width: u32, height: u32, options: &IngestOptions) -> Result<(), IngestError> {
    let pixels = u64::from(width) * u64::from(height);
    if width == 0 || height == 0 {
        return Err(damaged(format, format!("it claims a size of {width} × {height} pixels")));
    }
    if pixels > options.max_pixels {
        return Err(IngestError::TooLarge {
            format: format.name(),
            width: width.into(),
            height: height.into(),
            limit_megapixels: options.max_pixels / 1_000_000,
        });
    }
    Ok(())
}

/// A zeroed buffer, or an error instead of an abort when the phone has no memory for it.
fn alloc(len: usize, width: u32, height: u32) -> Result<Vec<u8>, IngestError> {
    let mut buf = Vec::new();
    buf.try_reserve_exact(len).map_err(|_| IngestError::OutOfMemory { width, height })?;
    buf.resize(len, 0);
    Ok(buf)
}

// ----- decoding ----------------------------------------------------------------------------------------

/// Decoded pixels: 8-bit gray or 8-bit RGB, never alpha.
struct Decoded {
    pixels: Vec<u8>,
    width: u32,
    height: u32,
    gray: bool,
    orientation: Orientation,
}

/// JPEG goes to zune-jpeg directly (the decoder `image` itself uses), so that the headers, the
/// EXIF orientation and the pixels come from one pass over the bytes, without `image` copying the
/// whole file first.
fn decode_jpeg(bytes: &[u8], options: &IngestOptions) -> Result<Decoded, IngestError> {
    let format = SourceFormat::Jpeg;
    // Lenient mode: phones write JPEGs with small oddities that every viewer accepts. A file cut
    // short is the one defect we must not paper over (the decoder would fill the rest with grey),
    // so that is checked separately by `check_jpeg_complete`.
    let zopts = DecoderOptions::default().set_strict_mode(false).set_max_width(usize::MAX).set_max_height(usize::MAX);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), zopts);
    decoder.decode_headers().map_err(|e| damaged(format, e))?;
    let (w, h) = decoder.dimensions().ok_or_else(|| damaged(format, "no frame header"))?;
    let (width, height) = (w as u32, h as u32);
    check_size(format, width, height, options)?;
    check_jpeg_complete(bytes).map_err(|detail| damaged(format, detail))?;

    let orientation =
        decoder.exif().and_then(|exif| Orientation::from_exif_chunk(exif)).unwrap_or(Orientation::NoTransforms);
    let gray = matches!(decoder.input_colorspace(), Some(ZuneColorSpace::Luma | ZuneColorSpace::LumaA));
    // CMYK and YCCK (print workflows, some scanners) come out as RGB.
    let out = if gray { ZuneColorSpace::Luma } else { ZuneColorSpace::RGB };
    decoder.set_options(decoder.options().jpeg_set_out_colorspace(out));
    let len = decoder.output_buffer_size().ok_or_else(|| damaged(format, "no frame header"))?;
    let mut pixels = alloc(len, width, height)?;
    decoder.decode_into(&mut pixels).map_err(|e| damaged(format, e))?;
    Ok(Decoded { pixels, width, height, gray, orientation })
}

/// Walks the JPEG's segments from SOI to EOI without decoding anything, and says so if the file
/// ends before its EOI marker. Segment lengths are followed, so markers inside an embedded EXIF
/// thumbnail are skipped, and data after the first EOI (phones append extra pictures there) is
/// ignored.
fn check_jpeg_complete(bytes: &[u8]) -> Result<(), &'static str> {
    const TRUNCATED: &str = "the file ends before the image does";
    let mut pos = 2; // after SOI
    loop {
        // Find the next marker, skipping fill bytes (and tolerating stray bytes, as decoders do).
        let ff = memchr::memchr(0xFF, bytes.get(pos..).ok_or(TRUNCATED)?).ok_or(TRUNCATED)?;
        pos += ff;
        while bytes.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let marker = *bytes.get(pos).ok_or(TRUNCATED)?;
        pos += 1;
        match marker {
            0xD9 => return Ok(()),
            // Restart markers, TEM, and a stuffed zero have no length.
            0xD0..=0xD7 | 0x01 | 0x00 => {}
            _ => {
                let len = bytes.get(pos..pos + 2).ok_or(TRUNCATED)?;
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                if len < 2 {
                    return Err("a segment has an impossible length");
                }
                pos += len;
                if pos > bytes.len() {
                    return Err(TRUNCATED);
                }
                if marker == 0xDA {
                    // Entropy-coded data follows a scan header; it ends at the first marker that
                    // is neither a stuffed 0xFF00 nor a restart marker.
                    loop {
                        let ff = memchr::memchr(0xFF, bytes.get(pos..).ok_or(TRUNCATED)?).ok_or(TRUNCATED)?;
                        pos += ff;
                        let next = *bytes.get(pos + 1).ok_or(TRUNCATED)?;
                        if next == 0x00 || (0xD0..=0xD7).contains(&next) || next == 0xFF {
                            pos += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
        }
    }
}

/// The most a decoded source image may take in memory. A PNG of 16-bit RGBA pixels takes eight
/// bytes a pixel, so it is held to fewer pixels than `max_pixels` allows an ordinary photo.
const MAX_DECODED_BYTES: u64 = 100 * 1000 * 1000;

/// PNG and WebP through `image`'s decoders, which read only the header when created.
/// The size checks of a PNG or WebP file, from its header alone: its pixel count, and the memory
/// its decoded pixels would take (a 16-bit PNG takes twice an 8-bit one's).
fn check_image_header(
    decoder: &impl ImageDecoder,
    format: SourceFormat,
    options: &IngestOptions,
) -> Result<(), IngestError> {
    let (width, height) = decoder.dimensions();
    check_size(format, width, height, options)?;
    if decoder.total_bytes() > MAX_DECODED_BYTES {
        return Err(IngestError::TooLarge {
            format: format.name(),
            width: width.into(),
            height: height.into(),
            limit_megapixels: MAX_DECODED_BYTES / u64::from(decoder.color_type().bytes_per_pixel().max(1)) / 1_000_000,
        });
    }
    Ok(())
}

fn decode_with_image(
    mut decoder: impl ImageDecoder,
    format: SourceFormat,
    options: &IngestOptions,
) -> Result<Decoded, IngestError> {
    let (width, height) = decoder.dimensions();
    check_image_header(&decoder, format, options)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let color = decoder.color_type();
    let len = usize::try_from(decoder.total_bytes()).map_err(|_| IngestError::OutOfMemory { width, height })?;
    let mut pixels = alloc(len, width, height)?;
    decoder.read_image(&mut pixels).map_err(|e| damaged(format, e))?;
    let gray = match color {
        ColorType::L8 => true,
        ColorType::La8 => {
            flatten_on_white::<2>(&mut pixels);
            true
        }
        ColorType::Rgb8 => false,
        ColorType::Rgba8 => {
            flatten_on_white::<4>(&mut pixels);
            false
        }
        ColorType::L16 => {
            to_8_bit(&mut pixels);
            true
        }
        ColorType::La16 => {
            to_8_bit(&mut pixels);
            flatten_on_white::<2>(&mut pixels);
            true
        }
        ColorType::Rgb16 => {
            to_8_bit(&mut pixels);
            false
        }
        ColorType::Rgba16 => {
            to_8_bit(&mut pixels);
            flatten_on_white::<4>(&mut pixels);
            false
        }
        other => {
            return Err(IngestError::UnsupportedFormat {
                format: format!("{} with {other:?} pixels", format.name()),
                advice: CONVERT_ADVICE,
            })
        }
    };
    Ok(Decoded { pixels, width, height, gray, orientation })
}

/// Keeps the high byte of each native-endian 16-bit sample, in place.
fn to_8_bit(buf: &mut Vec<u8>) {
    let n = buf.len() / 2;
    for i in 0..n {
        let v = u16::from_ne_bytes([buf[2 * i], buf[2 * i + 1]]);
        // Rounded, so that 65535 stays 255 and mid-grey stays mid-grey.
        buf[i] = ((u32::from(v) * 255 + 32767) / 65535) as u8;
    }
    buf.truncate(n);
    buf.shrink_to_fit();
}

/// Composites pixels with alpha (the last of `N` channels) onto white and drops the alpha, in
/// place: each pixel's colour channels are written at or before where they were read, so the
/// buffer can be shared. A photo has no transparency; a screenshot with some looks right on
/// white, as it does in most viewers.
fn flatten_on_white<const N: usize>(buf: &mut Vec<u8>) {
    let pixels = buf.len() / N;
    for i in 0..pixels {
        let a = u32::from(buf[i * N + N - 1]);
        for c in 0..N - 1 {
            let v = u32::from(buf[i * N + c]);
            buf[i * (N - 1) + c] = ((v * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    buf.truncate(pixels * (N - 1));
    buf.shrink_to_fit();
}

// ----- resizing and orienting --------------------------------------------------------------------

/// The size whose long side is at most `long`, keeping the aspect ratio; never enlarges. It is
/// computed on the stored (not yet oriented) size: rotating by 90° swaps width and height but not
/// which one is longer, so the scale is the same either way.
fn fit(width: u32, height: u32, long: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= long {
        return (width, height);
    }
    let scale = f64::from(long) / f64::from(longest);
    let w = ((f64::from(width) * scale).round() as u32).clamp(1, long);
    let h = ((f64::from(height) * scale).round() as u32).clamp(1, long);
    (w, h)
}

/// Lanczos3 (the filter ImageMagick and libvips use for downsizing by default), SIMD where the
/// CPU has it. `None` when the size does not change.
fn resize(src: &[u8], sw: u32, sh: u32, dw: u32, dh: u32, gray: bool) -> Result<Option<Vec<u8>>, IngestError> {
    if (sw, sh) == (dw, dh) {
        return Ok(None);
    }
    let pixel = if gray { PixelType::U8 } else { PixelType::U8x3 };
    let src = ImageRef::new(sw, sh, src, pixel).map_err(|e| IngestError::Encode(e.to_string()))?;
    let mut dst = ResizeImage::new(dw, dh, pixel);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    Resizer::new().resize(&src, &mut dst, &options).map_err(|e| IngestError::Encode(e.to_string()))?;
    Ok(Some(dst.into_vec()))
}

fn orient(pixels: Vec<u8>, w: u32, h: u32, gray: bool, orientation: Orientation) -> DynamicImage {
    let mut image = if gray {
        DynamicImage::ImageLuma8(ImageBuffer::<Luma<u8>, _>::from_raw(w, h, pixels).expect("buffer fits its size"))
    } else {
        DynamicImage::ImageRgb8(ImageBuffer::<Rgb<u8>, _>::from_raw(w, h, pixels).expect("buffer fits its size"))
    };
    image.apply_orientation(orientation);
    image
}

// ----- encoding ------------------------------------------------------------------------------------------

/// A baseline JPEG with 4:2:0 chroma and nothing but a JFIF header: no EXIF, XMP, ICC or
/// comment segment is ever written.
fn encode(pixels: &[u8], w: u32, h: u32, gray: bool, quality: u8) -> Result<EncodedJpeg, IngestError> {
    let mut bytes = Vec::with_capacity(pixels.len() / 8);
    let encoder = jpeg_encoder::Encoder::new(&mut bytes, quality);
    let color = if gray { jpeg_encoder::ColorType::Luma } else { jpeg_encoder::ColorType::Rgb };
    // `fit` keeps both sides at most `max_long_side` (at most 8192), so they fit in a u16.
    encoder.encode(pixels, w as u16, h as u16, color).map_err(|e| IngestError::Encode(e.to_string()))?;
    Ok(EncodedJpeg { hash: content_hash(&bytes), bytes, width: w, height: h })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_the_aspect_and_never_enlarges() {
        assert_eq!(fit(4000, 3000, 1600), (1600, 1200));
        assert_eq!(fit(3000, 4000, 1600), (1200, 1600));
        assert_eq!(fit(800, 600, 1600), (800, 600));
        assert_eq!(fit(10000, 10, 1600), (1600, 2));
    }

    #[test]
    fn flattening_puts_transparent_pixels_on_white() {
        let mut buf = vec![0, 0, 0, 0, 255, 0, 0, 255, 0, 0, 0, 128];
        flatten_on_white::<4>(&mut buf);
        assert_eq!(buf, vec![255, 255, 255, 255, 0, 0, 127, 127, 127]);
    }

    #[test]
    fn sixteen_bit_samples_round_to_eight() {
        let mut buf: Vec<u8> = [0u16, 65535, 32896].iter().flat_map(|v| v.to_ne_bytes()).collect();
        to_8_bit(&mut buf);
        assert_eq!(buf, vec![0, 255, 128]);
    }

    #[test]
    fn a_jpeg_cut_short_is_noticed() {
        // SOI, a tiny APP0, SOS with a 2-byte header and entropy data, no EOI.
        let cut = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0xDA, 0x00, 0x02, 0x12, 0x34];
        assert!(check_jpeg_complete(&cut).is_err());
        let mut whole = cut.to_vec();
        whole.extend_from_slice(&[0xFF, 0x00, 0x56, 0xFF, 0xD0, 0x78, 0xFF, 0xD9]);
        assert_eq!(check_jpeg_complete(&whole), Ok(()));
    }
}
