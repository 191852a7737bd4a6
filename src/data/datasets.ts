/**
 * Named data sets (`k49`, `kmnist`, `fashion-mnist`) that resolve to files in a cache folder,
 * downloaded from the data sets' official hosts when missing.
 *
 * - Files live in `<cache>/<name>/<file>`; the cache is `~/.cache/kana-native`, or
 *   `$KANA_NATIVE_CACHE`, or an explicit folder (the CLI's `--cache-dir`), in rising priority.
 * - Fashion-MNIST is looked for first in Debian's `/usr/share/datasets/fashion-mnist/`
 *   (package `dataset-fashion-mnist`), used in place, never copied.
 * - A download streams into a temporary file in the same folder while its MD5 is computed, is
 *   checked against the published sum, and only then renamed to its final name, so a file under a
 *   final name is always complete and verified; a failed, cut-off or aborted download leaves
 *   nothing behind. Files already present are trusted (they were verified when downloaded, or
 *   placed there by hand) unless `verify: true` asks to hash them again.
 * - Every failure is a `DataError` whose message says what happened and what to do, e.g. where to
 *   put the files by hand when the host cannot be reached ('EOFFLINE').
 *
 * Error codes: EOFFLINE (host unreachable), EHTTP (non-2xx answer), ETRUNCATED (connection cut
 * mid-file), ETIMEDOUT (no data for `timeoutMs`), ECHECKSUM / ESIZE (the file is not the published
 * one), EABORTED (the AbortSignal fired), ENOENT (missing and `download: false`), EDATASET (unknown
 * name), EOPTION (bad option), and the file system's own codes (EACCES, ...) for cache trouble.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp, createReadStream } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Presets, SingleBar } from 'cli-progress';
import { DataError, loadImages, loadLabels } from './readers';
import { loadClassmap } from './classmap';

export type DatasetName = 'k49' | 'kmnist' | 'fashion-mnist';

export const DATASET_NAMES: readonly DatasetName[] = ['k49', 'kmnist', 'fashion-mnist'];

export interface NamedDatasetFiles {
  trainImages: string;
  trainLabels: string;
  testImages: string;
  testLabels: string;
  /** The class map CSV, when one is present (Kuzushiji sets only). */
  classmap?: string;
  /** Class names by index: the data set's fixed list (the official class map's characters for Kuzushiji). */
  classNames?: string[];
}

/** What a progress display needs to know about a download in flight. */
export interface ProgressInfo {
  /** File name, e.g. 'k49-train-imgs.npz'. */
  file: string;
  /** Bytes received so far. */
  received: number;
  /** Expected bytes, when the server or the published size says. */
  total?: number;
}

/** One progress report of a download in flight, as `ensureDataset` sends it. */
export interface DownloadProgress extends ProgressInfo {
  url: string;
  dataset: DatasetName;
}

export type ProgressCallback = (p: DownloadProgress) => void;

export interface EnsureOptions {
  /** Cache folder (the CLI's `--cache-dir`); see `cacheDir()`. */
  cacheDir?: string;
  /**
   * Where to download from instead of the official hosts (a mirror, or a test server):
   * file URLs are `<baseUrl>/<file>`, with `{name}` in baseUrl replaced by the data set's name.
   * Default: `$KANA_NATIVE_DATASET_URL`, else the official URLs.
   */
  baseUrl?: string;
  onProgress?: ProgressCallback;
  /** Download missing files (default true). With false, a missing file is a DataError 'ENOENT'. */
  download?: boolean;
  signal?: AbortSignal;
  /**
   * Expected MD5 by file name, replacing the published sum (and its published size) for that file;
   * `null` turns verification off for it. For mirrors of re-packed files, and for tests.
   */
  checksums?: Record<string, string | null>;
  /** Folders searched (in order) before the cache; default: Debian's folder for fashion-mnist, none otherwise. */
  systemDirs?: string[];
  /** Hash files already in the cache against the published sums too (default false). */
  verify?: boolean;
  /** Give up when no data arrives for this many milliseconds (default 60000). */
  timeoutMs?: number;
}

export interface LoadedSplit {
  images: Uint8Array;
  labels: Int32Array;
  n: number;
  rows: number;
  cols: number;
}

export interface LoadedNamedDataset {
  train: LoadedSplit;
  test: LoadedSplit;
  classNames: string[];
  files: NamedDatasetFiles;
}

// ---------------------------------------------------------------------------------------------
// The data sets

interface FileSpec {
  name: string;
  /** Published MD5 of the file as served, when one is known. */
  md5?: string;
  /** Size in bytes of the file as served, when known. */
  size?: number;
}

interface DatasetSpec {
  title: string;
  /** Official folder URL, ending in '/'. */
  officialBase: string;
  homepage: string;
  files: { trainImages: FileSpec; trainLabels: FileSpec; testImages: FileSpec; testLabels: FileSpec };
  classmap?: FileSpec;
  classNames: readonly string[];
  systemDirs: readonly string[];
  /** Extra line for the "place the files by hand" instructions. */
  handHint?: string;
}

// Checksums and sizes. Sources:
// - Kuzushiji-49: the MD5s are the ones in ../shared/data/README.md (the same list torchvision-style
//   loaders use); the sizes, and the class map's MD5, come from the git-annex keys
//   (MD5E-s<size>--<md5>) of Mila's DataLad mirror of the official files, which records the URLs
//   it fetched from codh.rois.ac.jp: github.com/datasets-mila/datasets--kmnist (files such as
//   k49-train-imgs.npz -> MD5E-s66117696--7ac088b20481cf51dcd01ceaab89d821.npz, scripts/download.sh).
// - Kuzushiji-MNIST .npz: the official repository (github.com/rois-codh/kmnist: README.md,
//   download_data.py) publishes no checksums. The MD5s and sizes below are from the same Mila
//   mirror's git-annex keys (kmnist-train-imgs.npz -> MD5E-s18384171--a183fbc0...); the four MD5s
//   agree with an independent list in Simon Wenkel's CMNIST generation script
//   (CONSTANTS["MD5-CHECKSUMS"]["KMNIST"]). The class maps' MD5s from that mirror match the
//   official k49_classmap.csv / kmnist_classmap.csv copies in ../shared/data (checked by a test).
// - Fashion-MNIST: MD5s from the table in github.com/zalandoresearch/fashion-mnist README.md
//   ("Get the Data"); exact sizes as downloaders print them (26421880, 29515, 4422102, 5148).
//   Debian's dataset-fashion-mnist re-gzips the files (each is 24 bytes smaller: no stored file
//   name), so its copies do not match these sums; they are used as installed, trusted as
//   package-managed files, and only checked structurally when loaded.
const SPECS: Record<DatasetName, DatasetSpec> = {
  k49: {
    title: 'Kuzushiji-49',
    officialBase: 'http://codh.rois.ac.jp/kmnist/dataset/k49/',
    homepage: 'https://github.com/rois-codh/kmnist',
    files: {
      trainImages: { name: 'k49-train-imgs.npz', md5: '7ac088b20481cf51dcd01ceaab89d821', size: 66117696 },
      trainLabels: { name: 'k49-train-labels.npz', md5: '44a8e1b893f81e63ff38d73cad420f7a', size: 164485 },
      testImages: { name: 'k49-test-imgs.npz', md5: 'd352e201d846ce6b94f42c990966f374', size: 10971201 },
      testLabels: { name: 'k49-test-labels.npz', md5: '4da6f7a62e67a832d5eb1bd85c5ee448', size: 27450 },
    },
    classmap: { name: 'k49_classmap.csv', md5: 'f7d0d0391f68bdf0fe4cf160ceb85753', size: 697 },
    // The official class map's characters: 48 hiragana (including ゐ and ゑ) and the iteration mark ゝ.
    classNames: Array.from('あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわゐゑをんゝ'),
    systemDirs: [],
  },
  kmnist: {
    title: 'Kuzushiji-MNIST',
    officialBase: 'http://codh.rois.ac.jp/kmnist/dataset/kmnist/',
    homepage: 'https://github.com/rois-codh/kmnist',
    files: {
      trainImages: { name: 'kmnist-train-imgs.npz', md5: 'a183fbc01ed9a345513b145673d3d0bb', size: 18384171 },
      trainLabels: { name: 'kmnist-train-labels.npz', md5: 'b0e1d240e8afec72b50437fc3bc5908a', size: 29700 },
      testImages: { name: 'kmnist-test-imgs.npz', md5: 'dace6de62ca8b90843cc45366337d02e', size: 3079479 },
      testLabels: { name: 'kmnist-test-labels.npz', md5: '3ae489a79983d0fe386152684e3b5412', size: 5304 },
    },
    classmap: { name: 'kmnist_classmap.csv', md5: '899202f6e8dc29a321ac210a03d0f2f1', size: 151 },
    classNames: Array.from('おきすつなはまやれを'),
    systemDirs: [],
  },
  'fashion-mnist': {
    title: 'Fashion-MNIST',
    officialBase: 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
    homepage: 'https://github.com/zalandoresearch/fashion-mnist',
    files: {
      trainImages: { name: 'train-images-idx3-ubyte.gz', md5: '8d4fb7e6c68d591d4c3dfef9ec88bf0d', size: 26421880 },
      trainLabels: { name: 'train-labels-idx1-ubyte.gz', md5: '25c81989df183df01b3e8a0aad5dffbe', size: 29515 },
      testImages: { name: 't10k-images-idx3-ubyte.gz', md5: 'bef4ecab320f06d8554ea6380940ec79', size: 4422102 },
      testLabels: { name: 't10k-labels-idx1-ubyte.gz', md5: 'bb300cfdad3c16e7a12a480ee83cd310', size: 5148 },
    },
    classNames: ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'],
    systemDirs: ['/usr/share/datasets/fashion-mnist'],
    handHint: "On Debian or Ubuntu, 'apt-get install dataset-fashion-mnist' installs them under /usr/share/datasets/fashion-mnist/, which is looked in first.",
  },
};

const FILE_KEYS = ['trainImages', 'trainLabels', 'testImages', 'testLabels'] as const;
type FileKey = (typeof FILE_KEYS)[number];

function specOf(name: string): DatasetSpec {
  if (!Object.prototype.hasOwnProperty.call(SPECS, name)) {
    throw new DataError('EDATASET', `unknown data set ${JSON.stringify(name)}; known data sets: ${DATASET_NAMES.join(', ')}`);
  }
  return SPECS[name as DatasetName];
}

// ---------------------------------------------------------------------------------------------
// Paths and URLs

function expandHome(p: string): string {
  if (p === '~') return os.homedir();
  if (p.startsWith('~/') || p.startsWith(`~${path.sep}`)) return path.join(os.homedir(), p.slice(2));
  return p;
}

/**
 * The cache folder: `explicit` (e.g. `--cache-dir`), else `$KANA_NATIVE_CACHE`, else
 * `~/.cache/kana-native`. A leading `~` is expanded; the result is absolute.
 */
export function cacheDir(explicit?: string): string {
  const chosen = explicit !== undefined && explicit !== '' ? explicit
    : process.env.KANA_NATIVE_CACHE ? process.env.KANA_NATIVE_CACHE
      : path.join(os.homedir(), '.cache', 'kana-native');
  return path.resolve(expandHome(chosen));
}

/** The folder a data set's files are cached in: `<cacheDir>/<name>`. */
export function datasetDir(name: DatasetName, explicitCacheDir?: string): string {
  specOf(name);
  return path.join(cacheDir(explicitCacheDir), name);
}

function baseFor(name: DatasetName, spec: DatasetSpec, baseUrl: string | undefined): string {
  const raw = baseUrl !== undefined && baseUrl !== '' ? baseUrl
    : process.env.KANA_NATIVE_DATASET_URL ? process.env.KANA_NATIVE_DATASET_URL : undefined;
  if (raw === undefined) return spec.officialBase;
  const base = raw.split('{name}').join(name);
  let u: URL;
  try {
    u = new URL(base);
  } catch {
    throw new DataError('EOPTION', `data set URL ${JSON.stringify(raw)} (baseUrl or KANA_NATIVE_DATASET_URL) is not a valid URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new DataError('EOPTION', `data set URL ${JSON.stringify(raw)} must be http: or https:`);
  }
  return base.endsWith('/') ? base : `${base}/`;
}

function urlFor(base: string, file: string): string {
  return base + encodeURIComponent(file);
}

/** What a data set consists of and where its files come from and go: for `--help`-style listings. */
export function describeDataset(name: DatasetName, opts: { cacheDir?: string; baseUrl?: string } = {}): {
  name: DatasetName; title: string; homepage: string; dir: string;
  files: { key: FileKey | 'classmap'; name: string; url: string; md5?: string; size?: number; path: string }[];
  classNames: string[];
} {
  const spec = specOf(name);
  const dir = datasetDir(name, opts.cacheDir);
  const base = baseFor(name, spec, opts.baseUrl);
  const entries: [FileKey | 'classmap', FileSpec][] = FILE_KEYS.map((k) => [k, spec.files[k]] as [FileKey, FileSpec]);
  if (spec.classmap) entries.push(['classmap', spec.classmap]);
  return {
    name, title: spec.title, homepage: spec.homepage, dir,
    files: entries.map(([key, f]) => ({ key, name: f.name, url: urlFor(base, f.name), md5: f.md5, size: f.size, path: path.join(dir, f.name) })),
    classNames: [...spec.classNames],
  };
}

// ---------------------------------------------------------------------------------------------
// Downloading one file

interface Expect { md5?: string; size?: number }

function expectFor(f: FileSpec, checksums: Record<string, string | null> | undefined): Expect {
  if (checksums && Object.prototype.hasOwnProperty.call(checksums, f.name)) {
    const v = checksums[f.name];
    if (v === null) return {};
    if (typeof v !== 'string' || !/^[0-9a-f]{32}$/i.test(v)) {
      throw new DataError('EOPTION', `checksums[${JSON.stringify(f.name)}] must be a 32-digit hex MD5 or null, got ${JSON.stringify(v)}`);
    }
    return { md5: v.toLowerCase() };
  }
  return { md5: f.md5, size: f.size };
}

/** A failure to reach the host at all (before any HTTP answer): collected into one EOFFLINE. */
class Unreachable extends Error {
  constructor(readonly url: string, readonly why: string) { super(why); }
}

function describeCause(e: unknown): string {
  // fetch() wraps the socket error: TypeError('fetch failed', { cause: Error { code: 'ECONNREFUSED' } }).
  const parts: string[] = [];
  let cur: unknown = e;
  for (let depth = 0; cur && depth < 4; depth++) {
    const err = cur as { code?: unknown; message?: unknown; cause?: unknown };
    const code = typeof err.code === 'string' ? err.code : undefined;
    const msg = typeof err.message === 'string' ? err.message : String(cur);
    const text = code && !msg.includes(code) ? `${code}: ${msg}` : msg;
    if (!parts.includes(text)) parts.push(text);
    cur = err.cause;
  }
  return parts.slice(-2).join(' — ') || 'unknown error';
}

function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

interface DownloadContext {
  dataset: DatasetName;
  signal?: AbortSignal;
  onProgress?: ProgressCallback;
  timeoutMs: number;
}

function abortedError(ctx: DownloadContext, file: string): DataError {
  const e = new DataError('EABORTED', `download of the ${ctx.dataset} data set was aborted`, file);
  (e as { cause?: unknown }).cause = ctx.signal?.reason;
  return e;
}

/**
 * Stream `url` into a temporary file next to `dest`, hashing as it goes; verify, then rename into
 * place. Never leaves anything under `dest` unless verified, and removes the temporary file on
 * every failure.
 */
async function downloadFile(url: string, dest: string, expect: Expect, ctx: DownloadContext): Promise<void> {
  const file = path.basename(dest);
  if (ctx.signal?.aborted) throw abortedError(ctx, dest);
  const tmp = path.join(path.dirname(dest), `.${file}.${process.pid}-${randomBytes(4).toString('hex')}.part`);
  const ac = new AbortController();
  let stalled = false;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => { stalled = true; ac.abort(new Error(`no data for ${ctx.timeoutMs} ms`)); }, ctx.timeoutMs);
  };
  const onAbort = () => ac.abort(ctx.signal?.reason);
  ctx.signal?.addEventListener('abort', onAbort, { once: true });
  let fh: fsp.FileHandle | undefined;
  let renamed = false;
  try {
    arm();
    let res: Response;
    try {
      res = await fetch(url, {
        redirect: 'follow',
        signal: ac.signal,
        // Ask for the bytes as stored: fetch would transparently inflate a Content-Encoding: gzip
        // answer, and the MD5 is of the file, not of its contents.
        headers: { 'accept-encoding': 'identity', 'user-agent': 'kana-native (dataset download)' },
      });
    } catch (e) {
      if (ctx.signal?.aborted) throw abortedError(ctx, dest);
      if (stalled) throw new Unreachable(url, `no answer within ${ctx.timeoutMs} ms`);
      throw new Unreachable(url, describeCause(e));
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      const hint = res.status === 404 || res.status === 410
        ? ' (the file is not at that address; if you set baseUrl or KANA_NATIVE_DATASET_URL, check it)'
        : '';
      throw new DataError('EHTTP', `download failed: ${url} answered HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}${hint}`, dest);
    }
    const lengthHeader = res.headers.get('content-length');
    const announced = lengthHeader !== null && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
    const total = announced ?? expect.size;
    try {
      fh = await fsp.open(tmp, 'wx', 0o644);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new DataError(err.code ?? 'EIO', `cannot write to the cache folder ${path.dirname(dest)} (${err.message}); choose another with --cache-dir or KANA_NATIVE_CACHE`, dest);
    }
    const hash = createHash('md5');
    let received = 0;
    ctx.onProgress?.({ file, received, total, url, dataset: ctx.dataset });
    if (res.body) {
      const reader = res.body.getReader();
      for (;;) {
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch (e) {
          if (ctx.signal?.aborted) throw abortedError(ctx, dest);
          if (stalled) {
            throw new DataError('ETIMEDOUT', `download of ${url} stalled: no data for ${ctx.timeoutMs} ms after ${received} bytes${total !== undefined ? ` of ${total}` : ''}; try again`, dest);
          }
          throw new DataError('ETRUNCATED', `download of ${url} was cut off after ${received} bytes${total !== undefined ? ` of ${total}` : ''} (${describeCause(e)}); try again`, dest);
        }
        if (chunk.done) break;
        arm();
        const bytes = chunk.value;
        hash.update(bytes);
        try {
          await fh.write(bytes);
        } catch (e) {
          const err = e as NodeJS.ErrnoException;
          throw new DataError(err.code ?? 'EIO', `cannot write the download to the cache folder ${path.dirname(dest)} (${err.message}); free some space or choose another folder with --cache-dir or KANA_NATIVE_CACHE`, dest);
        }
        received += bytes.length;
        ctx.onProgress?.({ file, received, total, url, dataset: ctx.dataset });
      }
    }
    if (timer) clearTimeout(timer);
    if (ctx.signal?.aborted) throw abortedError(ctx, dest);
    if (announced !== undefined && received !== announced) {
      throw new DataError('ETRUNCATED', `download of ${url} ended after ${received} of the ${announced} bytes announced; try again`, dest);
    }
    await fh.sync();
    await fh.close();
    fh = undefined;
    const actual = hash.digest('hex');
    if (expect.md5 !== undefined && actual !== expect.md5) {
      throw new DataError('ECHECKSUM', `MD5 mismatch for the download from ${url}: expected ${expect.md5}, got ${actual} (${received} bytes${expect.size !== undefined ? `, expected ${expect.size}` : ''}); the file was deleted. The download may be corrupt or the mirror may serve a different file`, dest);
    }
    if (expect.size !== undefined && received !== expect.size) {
      throw new DataError('ESIZE', `size mismatch for the download from ${url}: expected ${expect.size} bytes, got ${received}; the file was deleted`, dest);
    }
    await fsp.rename(tmp, dest);
    renamed = true;
  } finally {
    if (timer) clearTimeout(timer);
    ctx.signal?.removeEventListener('abort', onAbort);
    // Tears down the connection if the body was not read to its end (a no-op when it was).
    ac.abort();
    if (fh) await fh.close().catch(() => undefined);
    if (!renamed) await fsp.rm(tmp, { force: true }).catch(() => undefined);
  }
}

/** Temporary files of downloads that died with their process (killed, power loss) and stopped growing. */
const STALE_PART_MS = 10 * 60 * 1000;

async function removeStaleParts(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return;
  }
  const now = Date.now();
  await Promise.all(names.filter((n) => /^\..+\.\d+-[0-9a-f]{8}\.part$/.test(n)).map(async (n) => {
    const p = path.join(dir, n);
    try {
      // A live download writes at least every `timeoutMs`, so an old mtime means nobody is writing.
      if (now - (await fsp.stat(p)).mtimeMs > STALE_PART_MS) await fsp.rm(p, { force: true });
    } catch {
      // Gone already, or not ours to remove: leave it.
    }
  }));
}

async function md5OfFile(p: string): Promise<string> {
  const hash = createHash('md5');
  for await (const chunk of createReadStream(p)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function isNonEmptyFile(p: string): Promise<boolean> {
  try {
    const st = await fsp.stat(p);
    return st.isFile() && st.size > 0;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Resolving a data set

function handInstructions(spec: DatasetSpec, dir: string, base: string, missing: FileSpec[]): string {
  const lines = [
    'Download these files by hand:',
    ...missing.map((f) => `  ${urlFor(base, f.name)}`),
    `and place them in ${dir}${path.sep} as:`,
    ...missing.map((f) => `  ${path.join(dir, f.name)}`),
  ];
  if (spec.classmap && !missing.includes(spec.classmap)) {
    lines.push(`(optionally with the class map ${urlFor(base, spec.classmap.name)} as ${path.join(dir, spec.classmap.name)})`);
  }
  if (spec.handHint) lines.push(spec.handHint);
  lines.push(`A different cache folder can be chosen with --cache-dir or KANA_NATIVE_CACHE; a mirror with KANA_NATIVE_DATASET_URL. Data set home page: ${spec.homepage}`);
  return lines.join('\n');
}

/**
 * Resolve a named data set to files on disk, downloading (and verifying) the missing ones.
 * Files already present, in a system folder or in the cache, are used as they are.
 */
export async function ensureDataset(name: DatasetName, opts: EnsureOptions = {}): Promise<NamedDatasetFiles> {
  const spec = specOf(name);
  const dir = datasetDir(name, opts.cacheDir);
  const base = baseFor(name, spec, opts.baseUrl);
  const timeoutMs = opts.timeoutMs ?? 60_000;
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new DataError('EOPTION', `timeoutMs must be a positive number, got ${timeoutMs}`);
  const systemDirs = opts.systemDirs ?? spec.systemDirs;
  const ctx: DownloadContext = { dataset: name, signal: opts.signal, onProgress: opts.onProgress, timeoutMs };
  if (opts.signal?.aborted) throw abortedError(ctx, dir);

  // The system folders are used only when they hold the whole set: mixing a re-packed copy with
  // downloaded files would be confusing to debug.
  let found: Partial<Record<FileKey, string>> = {};
  for (const sys of systemDirs) {
    const paths = FILE_KEYS.map((k) => path.join(sys, spec.files[k].name));
    const present = await Promise.all(paths.map(isNonEmptyFile));
    if (present.every(Boolean)) {
      found = Object.fromEntries(FILE_KEYS.map((k, i) => [k, paths[i]]));
      break;
    }
  }
  const fromSystem = Object.keys(found).length > 0;
  if (!fromSystem) {
    for (const k of FILE_KEYS) {
      const p = path.join(dir, spec.files[k].name);
      if (await isNonEmptyFile(p)) found[k] = p;
    }
  }

  if (opts.verify && !fromSystem) {
    for (const k of FILE_KEYS) {
      const p = found[k];
      if (p === undefined) continue;
      const expect = expectFor(spec.files[k], opts.checksums);
      if (expect.md5 === undefined) continue;
      const actual = await md5OfFile(p);
      if (actual !== expect.md5) {
        throw new DataError('ECHECKSUM', `MD5 mismatch for the cached file: expected ${expect.md5}, got ${actual}. Delete it to download it again`, p);
      }
    }
  }

  const missing = FILE_KEYS.filter((k) => found[k] === undefined);
  let classmap: string | undefined;
  if (spec.classmap) {
    const p = path.join(dir, spec.classmap.name);
    if (await isNonEmptyFile(p)) classmap = p;
  }

  if (missing.length > 0) {
    const missingSpecs = missing.map((k) => spec.files[k]);
    if (opts.download === false) {
      throw new DataError('ENOENT', `the ${spec.title} data set (${name}) is not in the cache ${dir} and downloading is off; missing: ${missingSpecs.map((f) => f.name).join(', ')}.\n${handInstructions(spec, dir, base, missingSpecs)}`);
    }
    try {
      await fsp.mkdir(dir, { recursive: true });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new DataError(err.code ?? 'EIO', `cannot create the cache folder ${dir} (${err.message}); choose another with --cache-dir or KANA_NATIVE_CACHE`);
    }
    await removeStaleParts(dir);
    for (const k of missing) {
      const f = spec.files[k];
      const dest = path.join(dir, f.name);
      const url = urlFor(base, f.name);
      try {
        await downloadFile(url, dest, expectFor(f, opts.checksums), ctx);
      } catch (e) {
        if (e instanceof Unreachable) {
          const still = missing.filter((m) => found[m] === undefined).map((m) => spec.files[m]);
          throw new DataError('EOFFLINE', `the ${spec.title} data set (${name}) could not be downloaded: cannot reach ${url} (${e.why}).\n${handInstructions(spec, dir, base, still)}`);
        }
        if (e instanceof DataError && e.code !== 'EABORTED') {
          (e as { message: string }).message += `\nIf this persists, download ${url} by hand and place it at ${dest}.`;
        }
        throw e;
      }
      found[k] = dest;
    }
    // The class map comes along with a download; it is small and optional (the built-in names are
    // the official map's), so failing to get it does not fail the data set.
    if (spec.classmap && classmap === undefined) {
      const dest = path.join(dir, spec.classmap.name);
      try {
        await downloadFile(urlFor(base, spec.classmap.name), dest, expectFor(spec.classmap, opts.checksums), ctx);
        classmap = dest;
      } catch (e) {
        if (e instanceof DataError && e.code === 'EABORTED') throw e;
      }
    }
  }

  return {
    trainImages: found.trainImages as string,
    trainLabels: found.trainLabels as string,
    testImages: found.testImages as string,
    testLabels: found.testLabels as string,
    ...(classmap !== undefined ? { classmap } : {}),
    classNames: [...spec.classNames],
  };
}

/**
 * Resolve (downloading if needed) and load a named data set: uint8 images (N·rows·cols) and int32
 * labels for both splits, and the class names (from the class map file when present).
 */
export async function loadNamedDataset(name: DatasetName, opts: EnsureOptions = {}): Promise<LoadedNamedDataset> {
  const spec = specOf(name);
  const files = await ensureDataset(name, opts);
  const classNames = files.classmap !== undefined ? await loadClassmap(files.classmap) : [...spec.classNames];
  const split = async (imgPath: string, lblPath: string): Promise<LoadedSplit> => {
    const img = await loadImages(imgPath);
    const lbl = await loadLabels(lblPath);
    if (img.n !== lbl.n) {
      throw new DataError('ESHAPE', `${lbl.n} labels, but ${imgPath} holds ${img.n} images`, lblPath);
    }
    for (let i = 0; i < lbl.n; i++) {
      if (lbl.labels[i] >= classNames.length) {
        throw new DataError('ELABEL', `label ${lbl.labels[i]} at index ${i} is out of range for the ${classNames.length} classes of ${name}`, lblPath);
      }
    }
    return { images: img.images, labels: lbl.labels, n: img.n, rows: img.rows, cols: img.cols };
  };
  const train = await split(files.trainImages, files.trainLabels);
  const test = await split(files.testImages, files.testLabels);
  if (train.rows !== test.rows || train.cols !== test.cols) {
    throw new DataError('ESHAPE', `training images are ${train.rows}×${train.cols} but test images are ${test.rows}×${test.cols}`, files.testImages);
  }
  return { train, test, classNames, files: { ...files, classNames } };
}

// ---------------------------------------------------------------------------------------------
// A terminal progress bar

/**
 * A progress callback that draws a cli-progress bar per file on a terminal (stderr by default),
 * and does nothing when the stream is not a TTY (CI logs, pipes). Call `stop()` when done, also
 * after a failure, to restore the cursor.
 */
export function terminalProgress(
  stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr,
): ((p: ProgressInfo & { dataset?: string }) => void) & { stop(): void } {
  if (!stream.isTTY) {
    return Object.assign((_p: ProgressInfo) => undefined, { stop: () => undefined });
  }
  let bar: SingleBar | undefined;
  let current: string | undefined;
  const stop = () => {
    bar?.stop();
    bar = undefined;
    current = undefined;
  };
  const cb = (p: ProgressInfo & { dataset?: string }) => {
    const key = `${p.dataset ?? ''}/${p.file}`;
    const total = p.total ?? 0;
    const payload = { file: p.file, size: p.total !== undefined ? `${fmtBytes(p.received)}/${fmtBytes(p.total)}` : fmtBytes(p.received) };
    if (key !== current) {
      stop();
      bar = new SingleBar({
        stream,
        format: p.total !== undefined ? ' {file} [{bar}] {percentage}% | {size} | ETA {eta_formatted}' : ' {file} | {size}',
        hideCursor: true,
        fps: 10,
      }, Presets.shades_classic);
      bar.start(Math.max(total, 1), Math.min(p.received, Math.max(total, 1)), payload);
      current = key;
    } else if (bar) {
      bar.update(p.total !== undefined ? Math.min(p.received, total) : 0, payload);
    }
    if (p.total !== undefined && p.received >= p.total) stop();
  };
  return Object.assign(cb, { stop });
}
