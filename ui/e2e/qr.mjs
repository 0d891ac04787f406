// The hall's enrolment QR code, as `gridwalk-relay enroll --qr` prints it in a terminal, read
// back by the tests: shared by walker.mjs (a phone's camera) and tests/e2e/window.mjs (a photo of
// the code in the real window). It lives here, beside ui/node_modules, for jsqr and qrcode.
import jsQR from 'jsqr';
import QRCode from 'qrcode';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { BIN, assert } from '../../tests/e2e/lib.mjs';

/**
 * The text of the QR code the relay prints in a terminal. It is drawn with half blocks, two rows
 * of modules a line, light modules as ink (the terminal's text is light on dark); read back into
 * pixels, jsQR decodes it like any picture.
 */
export function readTerminalQr(printed) {
  const lines = printed.split('\n').filter((l) => l.length > 0 && /^[█▀▄ ]+$/.test(l));
  assert(lines.length > 10, `the relay printed a QR code: ${printed}`);
  const rows = lines.flatMap((l) => [[...l].map((c) => c === '█' || c === '▀'), [...l].map((c) => c === '█' || c === '▄')]);
  const scale = 4;
  const width = rows[0].length * scale;
  const height = rows.length * scale;
  const data = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = rows[Math.floor(y / scale)][Math.floor(x / scale)] ? 255 : 0;
      data.fill(v, (y * width + x) * 4, (y * width + x) * 4 + 3);
      data[(y * width + x) * 4 + 3] = 255;
    }
  }
  return jsQR(data, width, height)?.data ?? null;
}

/**
 * An enrolment code made at the relay with its QR code printed (`enrollArgs` as for
 * `gridwalk-relay enroll`, e.g. '--name', 'x', '--grids', 'v01-g01'). The printed QR code is read
 * back and must hold the relay's address and the code. Returns both.
 */
export function enrolCodeWithQr(relayDir, relayUrl, ...enrollArgs) {
  const printed = spawnSync(
    join(BIN, 'gridwalk-relay'),
    ['--data-dir', relayDir, 'enroll', ...enrollArgs, '--qr', '--relay-url', relayUrl],
    { encoding: 'utf8' },
  );
  assert(printed.status === 0, `gridwalk-relay enroll --qr: ${printed.stderr}`);
  const code = printed.stdout.trim();
  const link = readTerminalQr(printed.stderr);
  assert(link === `gridwalk:enrol?relay=${relayUrl}&code=${code}`, `the relay's QR code holds its address and the code: ${link}`);
  return { code, link };
}

/** A PNG of `text`'s QR code, as a photo of a printed code would show it: dark on white. */
export function qrPng(text) {
  return QRCode.toBuffer(text, { scale: 6 });
}
