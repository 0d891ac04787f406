// Reading the hall's enrolment QR code from a camera frame or a photo. The decoder is jsQR, pure
// JavaScript bundled into the app: nothing is fetched at run time, because a phone in the field
// has no network when it enrols at the hall's LAN.

import jsQR from 'jsqr';
import { parseEnrolLink, type EnrolLink } from './enrol';

/** Pixels as a canvas gives them (RGBA, row by row); `ImageData` is one. */
export type Pixels = { data: Uint8ClampedArray; width: number; height: number };

/**
 * Which polarity to look for. A QR code is dark on light, but the relay's code in a terminal with
 * a light theme, or one shown on a phone in dark mode, is light on dark. `both` tries both; the
 * camera instead alternates `normal` and `inverted` from frame to frame, which finds either at
 * half the cost a frame on a cheap phone.
 */
export type Polarity = 'both' | 'normal' | 'inverted';

/** The text of the QR code in the picture, or null when none is found. */
export function decodeQr(image: Pixels, polarity: Polarity = 'both'): string | null {
  if (polarity === 'both') return decodeOnce(image, false) ?? decodeOnce(image, true);
  return decodeOnce(image, polarity === 'inverted');
}

function decodeOnce(image: Pixels, invert: boolean): string | null {
  // The picture is inverted here rather than by jsQR's own option: its `onlyInvert` throws in
  // 1.4.0 (cozmo/jsQR#181), and with `attemptBoth` a throw in the first pass would lose the second.
  const data = invert ? inverted(image.data) : image.data;
  try {
    const found = jsQR(data, image.width, image.height, { inversionAttempts: 'dontInvert' });
    return found ? found.data : null;
  } catch {
    // jsQR throws on some pictures in which it half finds a code; for the walker that is a
    // frame without a readable code, and the next frame is read as usual.
    return null;
  }
}

function inverted(data: Uint8ClampedArray): Uint8ClampedArray {
  const out = new Uint8ClampedArray(data.length);
  for (let i = 0; i < data.length; i += 4) {
    out[i] = 255 - data[i];
    out[i + 1] = 255 - data[i + 1];
    out[i + 2] = 255 - data[i + 2];
    out[i + 3] = data[i + 3];
  }
  return out;
}

/** What one picture held: an enrolment link, some other QR code, or no QR code at all. */
export type QrReading = { kind: 'enrol'; link: EnrolLink; text: string } | { kind: 'other'; text: string } | { kind: 'none' };

export function readEnrolQr(image: Pixels, polarity: Polarity = 'both'): QrReading {
  const text = decodeQr(image, polarity);
  if (text === null) return { kind: 'none' };
  const link = parseEnrolLink(text);
  return link ? { kind: 'enrol', link, text } : { kind: 'other', text };
}

/**
 * The pixels of an image or video frame, scaled down so that its longer side is at most
 * `maxSide`: a cheap phone reads a 640 px frame several times a second, while a full camera
 * frame or a 12-megapixel photo would take it a second or more each.
 */
export function pixelsOf(
  source: CanvasImageSource,
  width: number,
  height: number,
  maxSide: number,
  canvas: HTMLCanvasElement = document.createElement('canvas'),
): ImageData | null {
  if (!width || !height) return null;
  const scale = Math.min(1, maxSide / Math.max(width, height));
  const w = Math.max(1, Math.round(width * scale));
  const h = Math.max(1, Math.round(height * scale));
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  // willReadFrequently keeps the canvas in memory rather than on the GPU, which makes the
  // getImageData after every draw much cheaper.
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) return null;
  ctx.drawImage(source, 0, 0, w, h);
  return ctx.getImageData(0, 0, w, h);
}

/** Loads a picked photo as an image element, which every WebView can draw onto a canvas. */
function loadImage(file: Blob): Promise<HTMLImageElement> {
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.onload = () => {
      URL.revokeObjectURL(url);
      resolve(img);
    };
    img.onerror = () => {
      URL.revokeObjectURL(url);
      reject(new Error('not an image'));
    };
    img.src = url;
  });
}

/**
 * Reads the QR code in a photo. A small size is tried first because it is fast and enough for a
 * photo taken close up; a QR code that fills only a corner of a large photo needs more pixels,
 * so larger sizes follow before giving up. Rejects when the file is not a picture.
 */
export async function readEnrolQrFromFile(file: Blob): Promise<QrReading> {
  const img = await loadImage(file);
  const canvas = document.createElement('canvas');
  const longest = Math.max(img.naturalWidth, img.naturalHeight);
  let reading: QrReading = { kind: 'none' };
  for (const side of [800, 1600, 3200]) {
    const pixels = pixelsOf(img, img.naturalWidth, img.naturalHeight, side, canvas);
    if (pixels) reading = readEnrolQr(pixels);
    if (reading.kind !== 'none' || side >= longest) break;
  }
  return reading;
}
