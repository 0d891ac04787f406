import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import QRCode from 'qrcode';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import QrScan from '../components/QrScan.svelte';
import { setLang } from '../lib/i18n.svelte';
import { decodeQr, readEnrolQr, type Pixels } from '../lib/qr';

/**
 * A QR code of `text` as a canvas would give it: `scale` pixels a module, a quiet zone of four
 * modules, dark on light (or light on dark when `inverted`, as a phone in dark mode shows it).
 */
function qrPixels(text: string, scale = 4, inverted = false): Pixels {
  const { modules } = QRCode.create(text, { errorCorrectionLevel: 'M' });
  const quiet = 4;
  const side = (modules.size + 2 * quiet) * scale;
  const data = new Uint8ClampedArray(side * side * 4);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const r = Math.floor(y / scale) - quiet;
      const c = Math.floor(x / scale) - quiet;
      const inside = r >= 0 && c >= 0 && r < modules.size && c < modules.size;
      const dark = inside && modules.get(r, c) === 1;
      const v = dark !== inverted ? 0 : 255;
      const i = (y * side + x) * 4;
      data[i] = data[i + 1] = data[i + 2] = v;
      data[i + 3] = 255;
    }
  }
  return { data, width: side, height: side };
}

const LINK = 'gridwalk:enrol?relay=http://192.168.1.20:8470&code=QR5B25KKJ3';

describe('reading the enrolment QR code', () => {
  it('reads the link the relay prints back from a QR image, and takes relay and code from it', () => {
    expect(decodeQr(qrPixels(LINK))).toBe(LINK);
    expect(readEnrolQr(qrPixels(LINK))).toEqual({ kind: 'enrol', text: LINK, link: { relay: 'http://192.168.1.20:8470', code: 'QR5B25KKJ3' } });
  });

  it('reads a code shown light on dark, as a terminal with a light theme shows the relay\'s', () => {
    const inverted = qrPixels(LINK, 3, true);
    expect(readEnrolQr(inverted).kind).toBe('enrol');
    // The camera looks for one polarity a frame, in turn: each finds its own kind only.
    expect(decodeQr(inverted, 'inverted')).toBe(LINK);
    expect(decodeQr(inverted, 'normal')).toBeNull();
    expect(decodeQr(qrPixels(LINK), 'normal')).toBe(LINK);
  });

  it('tells a QR code that is not an enrolment link from one that is', () => {
    const other = 'https://www.example.org/news/42';
    expect(decodeQr(qrPixels(other))).toBe(other);
    expect(readEnrolQr(qrPixels(other))).toEqual({ kind: 'other', text: other });
    // An enrolment link without a code is of no use either.
    expect(readEnrolQr(qrPixels('gridwalk:enrol?relay=http://192.168.1.20:8470')).kind).toBe('other');
  });

  it('finds nothing in a picture without a QR code', () => {
    const blank = { data: new Uint8ClampedArray(200 * 200 * 4).fill(200), width: 200, height: 200 };
    expect(decodeQr(blank)).toBeNull();
    expect(readEnrolQr(blank)).toEqual({ kind: 'none' });
  });
});

describe('the QR scanner', () => {
  const original = Object.getOwnPropertyDescriptor(navigator, 'mediaDevices');
  beforeEach(() => {
    // jsdom plays no video; the scanner only needs play() to return.
    vi.spyOn(HTMLMediaElement.prototype, 'play').mockResolvedValue(undefined);
  });
  afterEach(() => {
    vi.restoreAllMocks();
    if (original) Object.defineProperty(navigator, 'mediaDevices', original);
    else delete (navigator as { mediaDevices?: unknown }).mediaDevices;
  });

  function camera(getUserMedia: () => Promise<unknown>) {
    Object.defineProperty(navigator, 'mediaDevices', { configurable: true, value: { getUserMedia: vi.fn(getUserMedia) } });
  }

  it('says so in both languages when the camera is refused, and leaves the photo choice', async () => {
    camera(() => Promise.reject(new DOMException('denied', 'NotAllowedError')));
    render(QrScan, { props: { onlink: () => {} } });
    await fireEvent.click(screen.getByTestId('enroll-scan'));
    const problem = await screen.findByTestId('enroll-scan-problem');
    expect(problem.textContent).toContain('没有使用摄像头的权限');
    setLang('en');
    await waitFor(() => expect(screen.getByTestId('enroll-scan-problem').textContent).toContain('The camera is not allowed'));
    expect(screen.getByTestId('enroll-scan-file')).toBeTruthy();
    // Allowed afterwards in the phone's settings: one tap tries again.
    camera(() => Promise.resolve({ getTracks: () => [] }));
    await fireEvent.click(screen.getByTestId('enroll-scan-retry'));
    await waitFor(() => expect(screen.getByTestId('enroll-scanner').dataset.live).toBe('true'));
    expect(screen.queryByTestId('enroll-scan-problem')).toBeNull();
  });

  it('says there is no camera where the browser has none', async () => {
    Object.defineProperty(navigator, 'mediaDevices', { configurable: true, value: undefined });
    render(QrScan, { props: { onlink: () => {} } });
    await fireEvent.click(screen.getByTestId('enroll-scan'));
    expect((await screen.findByTestId('enroll-scan-problem')).textContent).toContain('没有可用的摄像头');
  });

  it('stops the camera when the scanner is closed, and when the screen is left', async () => {
    const stops: number[] = [];
    let n = 0;
    camera(() => {
      const id = ++n;
      return Promise.resolve({ getTracks: () => [{ stop: () => stops.push(id) }] });
    });
    const view = render(QrScan, { props: { onlink: () => {} } });
    await fireEvent.click(screen.getByTestId('enroll-scan'));
    await waitFor(() => expect(screen.getByTestId('enroll-scanner').dataset.live).toBe('true'));
    await fireEvent.click(screen.getByTestId('enroll-scan-close'));
    expect(stops).toEqual([1]);
    expect(screen.getByTestId('enroll-scanner').dataset.open).toBe('false');

    await fireEvent.click(screen.getByTestId('enroll-scan'));
    await waitFor(() => expect(screen.getByTestId('enroll-scanner').dataset.live).toBe('true'));
    view.unmount();
    expect(stops).toEqual([1, 2]);
  });

  it('stops a camera that answers only after the scanner was closed', async () => {
    const stop = vi.fn();
    let answer: (s: unknown) => void = () => {};
    camera(() => new Promise((resolve) => (answer = resolve)));
    render(QrScan, { props: { onlink: () => {} } });
    await fireEvent.click(screen.getByTestId('enroll-scan'));
    await fireEvent.click(screen.getByTestId('enroll-scan-close'));
    answer({ getTracks: () => [{ stop }] });
    await waitFor(() => expect(stop).toHaveBeenCalledTimes(1));
    expect(screen.getByTestId('enroll-scanner').dataset.live).toBe('false');
  });
});
