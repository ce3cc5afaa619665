// Test harness: the real tickerd binary as a child process on 127.0.0.1, and
// Debian's Chromium driven by playwright-core. Waits are conditions with
// deadlines, never sleeps.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '../..');
// The binary `cargo build` made: in CARGO_TARGET_DIR when that is set, as cargo does.
const TARGET = process.env.CARGO_TARGET_DIR ? path.resolve(ROOT, process.env.CARGO_TARGET_DIR) : path.join(ROOT, 'target');
export const BIN = process.env.TICKERD_BIN ?? path.join(TARGET, 'debug/tickerd');
export const ARTIFACTS = path.join(ROOT, 'artifacts');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const DEADLINE = 15_000;

/** Polls `cond` (sync or async) every 50 ms until truthy; fails after `ms`. */
export async function eventually(what, cond, ms = DEADLINE) {
  const start = Date.now();
  let last;
  for (;;) {
    try {
      last = await cond();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() - start > ms) throw new Error(`timed out waiting for: ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A temp directory, removed by `cleanup()`. */
export function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tickerd-browser-'));
}

/**
 * A tickerd child process. `config` is TOML written to `<dir>/config.toml`
 * (omit it to run the built-in default demo, with the cwd an empty dir). The
 * first start listens on a port the kernel picks (`--listen 127.0.0.1:0`) and
 * reads it from the URL tickerd prints; a later `start()` (a restart) asks for
 * that same port again.
 */
export class Tickerd {
  constructor({ config, dir }) {
    this.port = 0;
    this.dir = dir ?? tempDir();
    this.configPath = config === undefined ? null : path.join(this.dir, 'config.toml');
    if (config !== undefined) fs.writeFileSync(this.configPath, config);
    this.log = '';
  }

  /** `http://127.0.0.1:PORT`, or `https://` when tickerd said it serves TLS. */
  get origin() {
    return `${this.scheme ?? 'http'}://127.0.0.1:${this.port}`;
  }

  static async start(opts = {}) {
    const t = new Tickerd(opts);
    await t.start();
    return t;
  }

  /** Rewrites the config the way editors save: a temp file, then a rename. */
  writeConfig(text) {
    const tmp = path.join(this.dir, '.config.toml.tmp');
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, this.configPath);
  }

  async start() {
    const args = ['--listen', `127.0.0.1:${this.port}`];
    if (this.configPath) args.unshift('--config', this.configPath);
    const child = spawn(BIN, args, { cwd: this.dir, env: { ...process.env, RUST_LOG: 'warn' } });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', resolve));
    let out = '';
    child.stdout.on('data', (b) => { out += b; });
    child.stderr.on('data', (b) => { this.log += b; });
    const url = await eventually(`tickerd listening (log: ${this.log})`, async () => {
      if (child.exitCode !== null) throw new Error(`tickerd exited ${child.exitCode}: ${this.log}`);
      return out.match(/dashboard at (https?):\/\/127\.0\.0\.1:(\d+)\//);
    });
    this.scheme = url[1];
    this.port = Number(url[2]);
  }

  /** Kills the process (SIGKILL: an abrupt end, like a crash) and waits for it. */
  async kill(signal = 'SIGKILL') {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill(signal);
    await this.exited;
  }

  async stop() {
    await this.kill('SIGTERM');
  }

  cleanup() {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Headless Chromium with the flags this project's CI needs, and a fresh profile.
 * `env` is the browser's environment (default: this process's), e.g. a `HOME`
 * whose NSS database trusts a test CA (tls.test.js).
 */
export async function launch({ env } = {}) {
  const userDataDir = tempDir();
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    env: env ?? process.env,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 1280, height: 800 },
  });
  const browser = {
    context,
    async close() {
      await context.close();
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
  return browser;
}

/**
 * A new page that records console errors and uncaught exceptions in
 * `page.errors`. `allow` lists patterns of expected messages (the browser's own
 * log line for a WebSocket that cannot connect while the server is down).
 */
export async function newPage(browser, { allow = [], viewport, colorScheme } = {}) {
  const page = await browser.context.newPage();
  if (viewport) await page.setViewportSize(viewport);
  if (colorScheme) await page.emulateMedia({ colorScheme });
  page.errors = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    if (!allow.some((re) => re.test(text))) page.errors.push(text);
  });
  page.on('pageerror', (e) => page.errors.push(`uncaught: ${e.message}`));
  return page;
}

/**
 * The text content of `selector` inside a tile's shadow root. The tile is
 * scrolled into view first: tiles out of view skip rendering.
 */
export function tileText(page, topic, selector) {
  return page.evaluate(([t, s]) => {
    const tile = document.querySelector(`ticker-tile[topic="${t}"]`);
    tile?.scrollIntoView({ block: 'nearest' });
    return tile?.shadowRoot?.querySelector(s)?.textContent ?? null;
  }, [topic, selector]);
}

/** The `data-seq` of a tile (the seq of the update it shows). */
export async function tileSeq(page, topic) {
  const s = await page.evaluate((t) => document.querySelector(`ticker-tile[topic="${t}"]`)?.dataset.seq, topic);
  return s === undefined ? null : Number(s);
}

export async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.evaluate(() => window.scrollTo(0, 0));
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

/** TOML for a config with fast synthetic stocks and host metrics; `extra` goes into `[server]`. */
export function demoConfig(extra = '') {
  return `[server]
listen = "127.0.0.1:0"
${extra}
[dashboard]
title = "Browser Test Ticker"

[[feed]]
name = "stocks"
kind = "synthetic"
topic = "stocks.{symbol}"
symbols = ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "TSLA"]
interval = "100ms"
volatility = 0.004

[[feed]]
name = "host"
kind = "system"
topic = "host.metrics"
interval = "1s"
`;
}
