// Shared by the end-to-end tests: real processes (relay, hall CLI, bridge) in a temporary folder,
// started and stopped for each test. No dependencies beyond Node 20.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = join(ROOT, 'target/debug');
export const OUT = join(ROOT, 'target/test-output');
mkdirSync(OUT, { recursive: true });

export function tempDir(name) {
  return mkdtempSync(join(tmpdir(), `gridwalk-${name}-`));
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

export async function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

/** Starts a program that prints "listening on http://…" and resolves with its URL. */
export function startListening(cmd, args, opts = {}) {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let out = '';
    let err = '';
    const timer = setTimeout(() => rej(new Error(`${cmd} did not start: ${err}`)), 30000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        res({ child, url: m[1] });
      }
    });
    child.stderr.on('data', (d) => {
      err = (err + d).slice(-4000);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`${cmd} exited with ${code}: ${err}`));
    });
  });
}

export async function stop(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([done, sleep(5000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** The relay on its embedded store, on `port` (0: any free port). */
export async function startRelay(dataDir, port = 0) {
  return startListening(join(BIN, 'gridwalk-relay'), ['--data-dir', dataDir, 'serve', '--listen', `127.0.0.1:${port}`]);
}

export function relayCli(dataDir, ...args) {
  return execFileSync(join(BIN, 'gridwalk-relay'), ['--data-dir', dataDir, ...args], { encoding: 'utf8' }).trim();
}

export function gw(store, ...args) {
  return execFileSync(join(BIN, 'gridwalk'), ['--store', store, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
}

/**
 * A hall PC with a small demo town, its rosters published and everything pushed to the relay.
 * Returns the hall's store path.
 */
export function hallWithTown(dir, relayDir, relayUrl) {
  const store = join(dir, 'hall.db');
  gw(store, 'init', '--device', 'hall-pc', '--walker', 'hall-1');
  gw(store, 'demo', '--seed', '5', '--villages', '2', '--households', '80', '--enterprises', '6',
    '--enterprise-grids', '1', '--requests', '40', '--visits', '40');
  gw(store, 'roster', 'publish');
  const code = relayCli(relayDir, 'enroll', '--name', 'hall', '--role', 'hall');
  gw(store, 'join', '--relay', relayUrl, '--code', code, '--name', 'hall');
  gw(store, 'sync', '--resend-all');
  return store;
}

export function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}
