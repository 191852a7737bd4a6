// Named data sets: downloads from a real HTTP server on 127.0.0.1 serving real files from
// ../shared/data (and Debian's Fashion-MNIST when installed). Nothing under test is mocked.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';

import { DataError, loadImages, loadLabels } from '../src/data/readers';
import { parseClassmap } from '../src/data/classmap';
import {
  cacheDir, describeDataset, ensureDataset, loadNamedDataset, terminalProgress,
  type DownloadProgress, type DatasetName,
} from '../src/data/datasets';

const SHARED = path.resolve(__dirname, '..', '..', 'shared', 'data');
const KM = path.join(SHARED, 'kmnist');
const haveShared = fs.existsSync(path.join(KM, 'kmnist-8k-imgs.npz')) && fs.existsSync(path.join(KM, 'kmnist-8k-labels.npz'));
const DEBIAN_FASHION = '/usr/share/datasets/fashion-mnist';
const FASHION_FILES = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'];
const haveDebianFashion = FASHION_FILES.every((f) => fs.existsSync(path.join(DEBIAN_FASHION, f)));

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'kana-datasets-'));
let dirNo = 0;
const freshCache = () => path.join(tmpRoot, `cache-${dirNo++}`);

const md5 = (p: string) => createHash('md5').update(fs.readFileSync(p)).digest('hex');

/** Real tests that need ../shared/data: skipped with a clear log line when it is absent. */
function realTest(title: string, fn: (t: ExecutionContext) => Promise<void>) {
  test(title, async (t) => {
    if (!haveShared) {
      t.log(`SKIPPED: ${KM} (real KMNIST files) is absent; this test needs it`);
      t.pass();
      return;
    }
    await fn(t);
  });
}

// ---------------------------------------------------------------------------------------------
// The local server. Each test registers its own routes under a unique prefix, so tests run
// concurrently and count their own requests.

type Route =
  | { kind: 'file'; file: string }
  | { kind: 'status'; code: number }
  | { kind: 'truncate'; file: string }
  | { kind: 'hang'; file: string }
  | { kind: 'redirect'; to: string };

const routes = new Map<string, Route>();
const hits = new Map<string, number>();
const sockets = new Set<import('node:net').Socket>();

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  const prefix = url.pathname.split('/')[1];
  hits.set(prefix, (hits.get(prefix) ?? 0) + 1);
  const route = routes.get(decodeURIComponent(url.pathname));
  if (!route) { res.writeHead(404, 'Not Found').end('no such file'); return; }
  if (route.kind === 'status') { res.writeHead(route.code).end('nope'); return; }
  if (route.kind === 'redirect') { res.writeHead(302, { location: route.to }).end(); return; }
  const body = fs.readFileSync(route.file);
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
  if (route.kind === 'file') { res.end(body); return; }
  // Send the first part, then either drop the connection or go silent.
  res.write(body.subarray(0, Math.min(65536, body.length >> 1)), () => {
    if (route.kind === 'truncate') setTimeout(() => res.socket?.destroy(), 20);
  });
});
server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });

let origin = '';
test.before(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
test.after.always(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  fs.rmSync(tmpRoot, { recursive: true, force: true });
});

let prefixNo = 0;
/** Register routes for `files` (name → route) under a new prefix; returns its base URL and hit counter. */
function serve(files: Record<string, Route>): { baseUrl: string; requests: () => number; prefix: string } {
  const prefix = `p${prefixNo++}`;
  for (const [name, route] of Object.entries(files)) routes.set(`/${prefix}/${name}`, route);
  return { baseUrl: `${origin}/${prefix}/`, requests: () => hits.get(prefix) ?? 0, prefix };
}

/** Real KMNIST files served under the official KMNIST names (the 8k subset stands in for both splits). */
const KMNIST_SOURCES: Record<string, string> = {
  'kmnist-train-imgs.npz': path.join(KM, 'kmnist-8k-imgs.npz'),
  'kmnist-train-labels.npz': path.join(KM, 'kmnist-8k-labels.npz'),
  'kmnist-test-imgs.npz': path.join(KM, 'kmnist-8k-imgs.npz'),
  'kmnist-test-labels.npz': path.join(KM, 'kmnist-8k-labels.npz'),
  'kmnist_classmap.csv': path.join(KM, 'kmnist_classmap.csv'),
};
const kmnistRoutes = (over: Record<string, Route> = {}): Record<string, Route> => ({
  ...Object.fromEntries(Object.entries(KMNIST_SOURCES).map(([n, f]) => [n, { kind: 'file', file: f } as Route])),
  ...over,
});
/** The real MD5s of the files served, replacing the official ones (the shared files are a subset). */
const kmnistChecksums = () => Object.fromEntries(Object.entries(KMNIST_SOURCES).map(([n, f]) => [n, md5(f)]));

/** A port with nothing listening: bind, note the port, close. */
async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

const listDir = (d: string) => (fs.existsSync(d) ? fs.readdirSync(d) : []);
const partials = (d: string) => listDir(d).filter((f) => f.endsWith('.part'));

async function dataError(t: ExecutionContext, p: Promise<unknown>, code: string): Promise<DataError> {
  const e = await t.throwsAsync(p);
  t.true(e instanceof DataError, `a DataError, got ${e}`);
  t.is((e as DataError).code, code, (e as Error).message);
  return e as DataError;
}

// ---------------------------------------------------------------------------------------------
// Cache folder and the published tables

test.serial('cacheDir: explicit > KANA_NATIVE_CACHE > ~/.cache/kana-native, with ~ expanded', (t) => {
  const saved = process.env.KANA_NATIVE_CACHE;
  try {
    delete process.env.KANA_NATIVE_CACHE;
    t.is(cacheDir(), path.join(os.homedir(), '.cache', 'kana-native'));
    process.env.KANA_NATIVE_CACHE = '/srv/kana-cache';
    t.is(cacheDir(), path.resolve('/srv/kana-cache'));
    t.is(cacheDir('/explicit/dir'), path.resolve('/explicit/dir'));
    t.is(cacheDir('~/c'), path.join(os.homedir(), 'c'));
    t.is(cacheDir('rel/dir'), path.resolve('rel/dir'));
    process.env.KANA_NATIVE_CACHE = '';
    t.is(cacheDir(), path.join(os.homedir(), '.cache', 'kana-native'), 'an empty variable is ignored');
  } finally {
    if (saved === undefined) delete process.env.KANA_NATIVE_CACHE;
    else process.env.KANA_NATIVE_CACHE = saved;
  }
});

test.serial('KANA_NATIVE_DATASET_URL overrides the official host; an explicit baseUrl overrides both', (t) => {
  const saved = process.env.KANA_NATIVE_DATASET_URL;
  try {
    delete process.env.KANA_NATIVE_DATASET_URL;
    t.is(describeDataset('k49').files[0].url, 'http://codh.rois.ac.jp/kmnist/dataset/k49/k49-train-imgs.npz');
    t.is(describeDataset('kmnist').files[4].url, 'http://codh.rois.ac.jp/kmnist/dataset/kmnist/kmnist_classmap.csv');
    t.is(describeDataset('fashion-mnist').files[2].url, 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-images-idx3-ubyte.gz');
    process.env.KANA_NATIVE_DATASET_URL = 'https://mirror.example/data/{name}';
    t.is(describeDataset('k49').files[1].url, 'https://mirror.example/data/k49/k49-train-labels.npz');
    t.is(describeDataset('k49', { baseUrl: 'http://127.0.0.1:9/flat/' }).files[1].url, 'http://127.0.0.1:9/flat/k49-train-labels.npz');
    process.env.KANA_NATIVE_DATASET_URL = 'not a url';
    t.throws(() => describeDataset('k49'), { instanceOf: DataError, message: /not a valid URL/ });
  } finally {
    if (saved === undefined) delete process.env.KANA_NATIVE_DATASET_URL;
    else process.env.KANA_NATIVE_DATASET_URL = saved;
  }
});

test('unknown data set names are refused with the list of known ones', async (t) => {
  const e = await dataError(t, ensureDataset('mnist' as DatasetName, { cacheDir: freshCache() }), 'EDATASET');
  t.regex(e.message, /k49, kmnist, fashion-mnist/);
});

test('the built-in tables: class names and the class maps\' MD5s match the official files in ../shared/data', (t) => {
  const k49map = path.join(SHARED, 'k49', 'k49_classmap.csv');
  const kmap = path.join(KM, 'kmnist_classmap.csv');
  if (!fs.existsSync(k49map) || !fs.existsSync(kmap)) { t.log(`SKIPPED: official class maps under ${SHARED} are absent`); t.pass(); return; }
  const k49 = describeDataset('k49');
  const km = describeDataset('kmnist');
  t.deepEqual(k49.classNames, parseClassmap(fs.readFileSync(k49map, 'utf8')));
  t.deepEqual(km.classNames, parseClassmap(fs.readFileSync(kmap, 'utf8')));
  t.is(k49.files[4].md5, md5(k49map));
  t.is(k49.files[4].size, fs.statSync(k49map).size);
  t.is(km.files[4].md5, md5(kmap));
  t.is(km.files[4].size, fs.statSync(kmap).size);
  t.is(k49.classNames.length, 49);
  t.deepEqual(describeDataset('fashion-mnist').classNames,
    ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']);
  for (const name of ['k49', 'kmnist', 'fashion-mnist'] as const) {
    for (const f of describeDataset(name).files) t.regex(f.md5 ?? '', /^[0-9a-f]{32}$/, `${name}/${f.name} has a published MD5`);
  }
});

// ---------------------------------------------------------------------------------------------
// Downloading

realTest('downloads a data set into the cache with progress, verified, loadable', async (t) => {
  const srv = serve(kmnistRoutes());
  const dir = freshCache();
  const events: DownloadProgress[] = [];
  const files = await ensureDataset('kmnist', { cacheDir: dir, baseUrl: srv.baseUrl, checksums: kmnistChecksums(), onProgress: (p) => events.push(p) });
  const cdir = path.join(dir, 'kmnist');
  t.is(files.trainImages, path.join(cdir, 'kmnist-train-imgs.npz'));
  t.is(files.testLabels, path.join(cdir, 'kmnist-test-labels.npz'));
  t.is(files.classmap, path.join(cdir, 'kmnist_classmap.csv'));
  t.deepEqual(files.classNames, Array.from('おきすつなはまやれを'));
  t.is(srv.requests(), 5);
  t.deepEqual(partials(cdir), [], 'no temporary files left');
  for (const [name, src] of Object.entries(KMNIST_SOURCES)) t.is(md5(path.join(cdir, name)), md5(src), name);

  const imgs = await loadImages(files.trainImages);
  t.deepEqual([imgs.n, imgs.rows, imgs.cols], [8000, 28, 28]);
  t.is((await loadLabels(files.testLabels)).n, 8000);

  // Progress: per file, starts at 0, never goes down, ends at the file's size, total announced.
  const byFile = new Map<string, DownloadProgress[]>();
  for (const e of events) byFile.set(e.file, [...(byFile.get(e.file) ?? []), e]);
  t.deepEqual([...byFile.keys()].sort(), Object.keys(KMNIST_SOURCES).sort());
  for (const [file, evs] of byFile) {
    const size = fs.statSync(KMNIST_SOURCES[file]).size;
    t.is(evs[0].received, 0);
    t.is(evs[evs.length - 1].received, size, file);
    t.true(evs.every((e, i) => e.total === size && e.dataset === 'kmnist' && (i === 0 || e.received >= evs[i - 1].received)));
    t.true(evs.every((e) => e.url === srv.baseUrl + file));
  }
  t.true(byFile.get('kmnist-train-imgs.npz')!.length > 3, 'the 2.4 MB file reports progress more than once');

  const loaded = await loadNamedDataset('kmnist', { cacheDir: dir, baseUrl: srv.baseUrl });
  t.is(srv.requests(), 5, 'loading the cached set makes no request');
  t.is(loaded.train.images.length, 8000 * 784);
  t.is(loaded.test.labels.length, 8000);
  t.deepEqual(loaded.classNames, parseClassmap(fs.readFileSync(KMNIST_SOURCES['kmnist_classmap.csv'], 'utf8')));
  t.deepEqual([loaded.train.rows, loaded.train.cols], [28, 28]);
});

realTest('already-cached files are not downloaded again; a partly cached set fetches only what is missing', async (t) => {
  const srv = serve(kmnistRoutes());
  const dir = freshCache();
  const opts = { cacheDir: dir, baseUrl: srv.baseUrl, checksums: kmnistChecksums() };
  await ensureDataset('kmnist', opts);
  t.is(srv.requests(), 5);
  const again = await ensureDataset('kmnist', opts);
  t.is(srv.requests(), 5, 'no request for a complete cache');
  t.is(again.classmap, path.join(dir, 'kmnist', 'kmnist_classmap.csv'));

  // Offline now (a closed port) and downloading off: the cache alone serves the data set.
  const offline = `http://127.0.0.1:${await closedPort()}/`;
  const files = await ensureDataset('kmnist', { cacheDir: dir, baseUrl: offline, download: false });
  t.is(files.trainLabels, path.join(dir, 'kmnist', 'kmnist-train-labels.npz'));

  fs.rmSync(path.join(dir, 'kmnist', 'kmnist-test-imgs.npz'));
  await ensureDataset('kmnist', opts);
  t.is(srv.requests(), 6, 'exactly one request, for the one missing file');

  // verify: true re-hashes the cached files against the expected sums.
  await ensureDataset('kmnist', { ...opts, verify: true });
  const e = await dataError(t, ensureDataset('kmnist', { ...opts, verify: true, checksums: { ...kmnistChecksums(), 'kmnist-train-labels.npz': '0'.repeat(32) } }), 'ECHECKSUM');
  t.regex(e.message, /kmnist-train-labels\.npz/);
  t.is(srv.requests(), 6);
});

realTest('temporary files left by a killed download are cleaned up once stale; fresh ones are left alone', async (t) => {
  const srv = serve(kmnistRoutes());
  const dir = freshCache();
  const cdir = path.join(dir, 'kmnist');
  fs.mkdirSync(cdir, { recursive: true });
  const stale = path.join(cdir, '.kmnist-train-imgs.npz.99999-0badc0de.part');
  const fresh = path.join(cdir, '.kmnist-test-imgs.npz.99998-0123abcd.part');
  fs.writeFileSync(stale, 'half a file');
  fs.writeFileSync(fresh, 'someone else is writing this');
  const old = new Date(Date.now() - 3600_000);
  fs.utimesSync(stale, old, old);
  await ensureDataset('kmnist', { cacheDir: dir, baseUrl: srv.baseUrl, checksums: kmnistChecksums() });
  t.false(fs.existsSync(stale));
  t.true(fs.existsSync(fresh));
});

realTest('redirects are followed', async (t) => {
  const target = serve(kmnistRoutes());
  const srv = serve(Object.fromEntries(Object.keys(KMNIST_SOURCES).map((n) => [n, { kind: 'redirect', to: target.baseUrl + n } as Route])));
  const dir = freshCache();
  const files = await ensureDataset('kmnist', { cacheDir: dir, baseUrl: srv.baseUrl, checksums: kmnistChecksums() });
  t.is(srv.requests(), 5);
  t.is(target.requests(), 5);
  t.is(md5(files.trainImages), md5(KMNIST_SOURCES['kmnist-train-imgs.npz']));
});

realTest('an MD5 mismatch is a DataError naming the file and both sums, and leaves no file behind', async (t) => {
  const srv = serve(kmnistRoutes());
  const dir = freshCache();
  const wrong = 'ffffffffffffffffffffffffffffffff';
  const actual = md5(KMNIST_SOURCES['kmnist-test-imgs.npz']);
  const e = await dataError(t, ensureDataset('kmnist', { cacheDir: dir, baseUrl: srv.baseUrl, checksums: { ...kmnistChecksums(), 'kmnist-test-imgs.npz': wrong } }), 'ECHECKSUM');
  t.regex(e.message, /kmnist-test-imgs\.npz/);
  t.true(e.message.includes(wrong), 'expected sum named');
  t.true(e.message.includes(actual), 'actual sum named');
  const cdir = path.join(dir, 'kmnist');
  t.is(e.file, path.join(cdir, 'kmnist-test-imgs.npz'));
  t.false(fs.existsSync(path.join(cdir, 'kmnist-test-imgs.npz')), 'nothing under the final name');
  t.deepEqual(partials(cdir), []);
  t.true(fs.existsSync(path.join(cdir, 'kmnist-train-imgs.npz')), 'files verified before it stay');

  // The published (official) sums reject the 8k subset too: by MD5 first.
  const dir2 = freshCache();
  const e2 = await dataError(t, ensureDataset('kmnist', { cacheDir: dir2, baseUrl: srv.baseUrl }), 'ECHECKSUM');
  t.true(e2.message.includes('a183fbc01ed9a345513b145673d3d0bb'), e2.message);
  t.deepEqual(listDir(path.join(dir2, 'kmnist')), []);
});

test('an HTTP 404 is a clear error naming the URL', async (t) => {
  const srv = serve({ 'k49-train-imgs.npz': { kind: 'status', code: 404 } });
  const dir = freshCache();
  const e = await dataError(t, ensureDataset('k49', { cacheDir: dir, baseUrl: srv.baseUrl }), 'EHTTP');
  t.true(e.message.includes(`${srv.baseUrl}k49-train-imgs.npz`), e.message);
  t.regex(e.message, /HTTP 404/);
  t.true(e.message.includes(path.join(dir, 'k49', 'k49-train-imgs.npz')), 'says where to put it by hand');
  t.is(srv.requests(), 1, 'stops at the first failure');
  t.deepEqual(listDir(path.join(dir, 'k49')), []);
});

test('an unreachable host is EOFFLINE: says it could not download, names the URLs and where to put the files', async (t) => {
  const base = `http://127.0.0.1:${await closedPort()}/mirror/`;
  const dir = freshCache();
  const e = await dataError(t, ensureDataset('k49', { cacheDir: dir, baseUrl: base }), 'EOFFLINE');
  t.log(e.message);
  t.regex(e.message, /could not be downloaded/);
  t.regex(e.message, /ECONNREFUSED/);
  const cdir = path.join(dir, 'k49');
  for (const f of ['k49-train-imgs.npz', 'k49-train-labels.npz', 'k49-test-imgs.npz', 'k49-test-labels.npz']) {
    t.true(e.message.includes(base + f), `URL of ${f}`);
    t.true(e.message.includes(path.join(cdir, f)), `destination of ${f}`);
  }
  t.true(e.message.includes(cdir + path.sep), 'names the folder');
  t.regex(e.message, /--cache-dir|KANA_NATIVE_CACHE/);
  t.deepEqual(partials(cdir), []);
});

test('fashion-mnist offline instructions mention the Debian package', async (t) => {
  const base = `http://127.0.0.1:${await closedPort()}/`;
  const e = await dataError(t, ensureDataset('fashion-mnist', { cacheDir: freshCache(), baseUrl: base, systemDirs: [] }), 'EOFFLINE');
  t.regex(e.message, /dataset-fashion-mnist/);
  t.regex(e.message, /train-images-idx3-ubyte\.gz/);
});

test('download: false with missing files is ENOENT with hand-placement instructions and no request', async (t) => {
  const srv = serve({});
  const dir = freshCache();
  const e = await dataError(t, ensureDataset('kmnist', { cacheDir: dir, baseUrl: srv.baseUrl, download: false }), 'ENOENT');
  t.true(e.message.includes(path.join(dir, 'kmnist', 'kmnist-train-imgs.npz')));
  t.true(e.message.includes(`${srv.baseUrl}kmnist-test-labels.npz`));
  t.is(srv.requests(), 0);
  t.false(fs.existsSync(path.join(dir, 'kmnist')), 'no folder created');
});

realTest('a response cut off mid-body is an error and leaves no partial file', async (t) => {
  const srv = serve(kmnistRoutes({ 'kmnist-train-imgs.npz': { kind: 'truncate', file: KMNIST_SOURCES['kmnist-train-imgs.npz'] } }));
  const dir = freshCache();
  const e = await dataError(t, ensureDataset('kmnist', { cacheDir: dir, baseUrl: srv.baseUrl, checksums: kmnistChecksums() }), 'ETRUNCATED');
  t.log(e.message);
  t.true(e.message.includes(`${srv.baseUrl}kmnist-train-imgs.npz`));
  t.regex(e.message, /cut off|ended after/);
  t.deepEqual(listDir(path.join(dir, 'kmnist')), [], 'neither the final nor a temporary file');
});

realTest('a download that goes silent times out (ETIMEDOUT) and leaves nothing', async (t) => {
  const srv = serve(kmnistRoutes({ 'kmnist-train-imgs.npz': { kind: 'hang', file: KMNIST_SOURCES['kmnist-train-imgs.npz'] } }));
  const dir = freshCache();
  const started = Date.now();
  let received = 0;
  // 2 s, not less: a loaded 2-core machine can take that long to get the answer's headers through,
  // which would make this the other kind of time-out (EOFFLINE, "no answer within").
  const e = await dataError(t, ensureDataset('kmnist', {
    cacheDir: dir, baseUrl: srv.baseUrl, checksums: kmnistChecksums(), timeoutMs: 2000, onProgress: (p) => { received = p.received; },
  }), 'ETIMEDOUT');
  t.true(Date.now() - started < 20_000);
  t.true(received > 0, 'stalled mid-body');
  t.regex(e.message, /stalled: no data for 2000 ms after \d+ bytes of 2460994/);
  t.deepEqual(listDir(path.join(dir, 'kmnist')), []);
});

realTest('an AbortSignal stops a download in flight (EABORTED) and leaves no partial file', async (t) => {
  const srv = serve(kmnistRoutes({ 'kmnist-train-imgs.npz': { kind: 'hang', file: KMNIST_SOURCES['kmnist-train-imgs.npz'] } }));
  const dir = freshCache();
  const ac = new AbortController();
  let sawBytes = false;
  const p = ensureDataset('kmnist', {
    cacheDir: dir, baseUrl: srv.baseUrl, checksums: kmnistChecksums(), signal: ac.signal,
    onProgress: (ev) => { if (ev.received > 0 && !sawBytes) { sawBytes = true; setTimeout(() => ac.abort(), 10); } },
  });
  await dataError(t, p, 'EABORTED');
  t.true(sawBytes, 'aborted mid-body');
  t.deepEqual(listDir(path.join(dir, 'kmnist')), []);
});

test('an already-aborted signal fails at once without a request', async (t) => {
  const srv = serve({});
  const ac = new AbortController();
  ac.abort();
  await dataError(t, ensureDataset('kmnist', { cacheDir: freshCache(), baseUrl: srv.baseUrl, signal: ac.signal }), 'EABORTED');
  t.is(srv.requests(), 0);
});

realTest('a missing class map does not fail the set: the built-in (official) names are used', async (t) => {
  // Real KMNIST files served under the K49 names: the 49-class map is absent on this server.
  const k49Names: Record<string, string> = {
    'k49-train-imgs.npz': KMNIST_SOURCES['kmnist-train-imgs.npz'], 'k49-train-labels.npz': KMNIST_SOURCES['kmnist-train-labels.npz'],
    'k49-test-imgs.npz': KMNIST_SOURCES['kmnist-test-imgs.npz'], 'k49-test-labels.npz': KMNIST_SOURCES['kmnist-test-labels.npz'],
  };
  const srv = serve(Object.fromEntries(Object.entries(k49Names).map(([n, f]) => [n, { kind: 'file', file: f } as Route])));
  const dir = freshCache();
  const checksums = Object.fromEntries(Object.entries(k49Names).map(([n, f]) => [n, md5(f)]));
  const loaded = await loadNamedDataset('k49', { cacheDir: dir, baseUrl: srv.baseUrl, checksums });
  t.is(loaded.files.classmap, undefined);
  t.is(loaded.classNames.length, 49);
  t.is(loaded.classNames[48], 'ゝ');
  t.is(srv.requests(), 5, 'four files and one (404) try for the class map');

  // With the official class map served, it is downloaded, verified by its published MD5, and used.
  const k49map = path.join(SHARED, 'k49', 'k49_classmap.csv');
  if (fs.existsSync(k49map)) {
    const srv2 = serve({ ...Object.fromEntries(Object.entries(k49Names).map(([n, f]) => [n, { kind: 'file', file: f } as Route])), 'k49_classmap.csv': { kind: 'file', file: k49map } });
    const dir2 = freshCache();
    const withMap = await loadNamedDataset('k49', { cacheDir: dir2, baseUrl: srv2.baseUrl, checksums });
    t.is(withMap.files.classmap, path.join(dir2, 'k49', 'k49_classmap.csv'));
    t.deepEqual(withMap.classNames, parseClassmap(fs.readFileSync(k49map, 'utf8')));
  }
});

realTest('system folders are looked in first (as for Debian\'s fashion-mnist), used in place', async (t) => {
  const sys = path.join(tmpRoot, `system-${dirNo++}`);
  fs.mkdirSync(sys);
  for (const [n, f] of Object.entries(KMNIST_SOURCES)) fs.copyFileSync(f, path.join(sys, n));
  const srv = serve({});
  const dir = freshCache();
  const files = await ensureDataset('kmnist', { cacheDir: dir, baseUrl: srv.baseUrl, systemDirs: ['/nonexistent-kana', sys] });
  t.is(files.trainImages, path.join(sys, 'kmnist-train-imgs.npz'));
  t.is(files.testLabels, path.join(sys, 'kmnist-test-labels.npz'));
  t.is(srv.requests(), 0);
  t.false(fs.existsSync(path.join(dir, 'kmnist')), 'nothing copied into the cache');

  // An incomplete system folder is not mixed with downloads: the cache is used instead.
  fs.rmSync(path.join(sys, 'kmnist-test-imgs.npz'));
  const srv2 = serve(kmnistRoutes());
  const files2 = await ensureDataset('kmnist', { cacheDir: dir, baseUrl: srv2.baseUrl, systemDirs: [sys], checksums: kmnistChecksums() });
  t.is(files2.trainImages, path.join(dir, 'kmnist', 'kmnist-train-imgs.npz'));
  t.is(srv2.requests(), 5);
});

test('Debian\'s dataset-fashion-mnist is used without a download when installed', async (t) => {
  if (!haveDebianFashion) { t.log(`SKIPPED: ${DEBIAN_FASHION} is absent (apt-get install dataset-fashion-mnist)`); t.pass(); return; }
  const srv = serve({});
  const loaded = await loadNamedDataset('fashion-mnist', { cacheDir: freshCache(), baseUrl: srv.baseUrl });
  t.is(srv.requests(), 0);
  t.is(loaded.files.trainImages, path.join(DEBIAN_FASHION, 'train-images-idx3-ubyte.gz'));
  t.deepEqual([loaded.train.n, loaded.train.rows, loaded.train.cols, loaded.test.n], [60000, 28, 28, 10000]);
  t.is(loaded.classNames[9], 'Ankle boot');
  t.is(Math.max(...loaded.train.labels), 9);
});

test('fashion-mnist IDX .gz files download and load (served from Debian\'s real copies)', async (t) => {
  if (!haveDebianFashion) { t.log(`SKIPPED: ${DEBIAN_FASHION} is absent (apt-get install dataset-fashion-mnist)`); t.pass(); return; }
  const srv = serve(Object.fromEntries(FASHION_FILES.map((f) => [f, { kind: 'file', file: path.join(DEBIAN_FASHION, f) } as Route])));
  const dir = freshCache();
  // Debian re-gzipped the files, so their MD5s are not the published ones: pass the real ones.
  const checksums = Object.fromEntries(FASHION_FILES.map((f) => [f, md5(path.join(DEBIAN_FASHION, f))]));
  const loaded = await loadNamedDataset('fashion-mnist', { cacheDir: dir, baseUrl: srv.baseUrl, systemDirs: [], checksums });
  t.is(srv.requests(), 4);
  t.is(loaded.files.trainLabels, path.join(dir, 'fashion-mnist', 'train-labels-idx1-ubyte.gz'));
  t.deepEqual([loaded.train.n, loaded.test.n], [60000, 10000]);
  t.is(loaded.classNames.length, 10);
  // The published sums reject Debian's re-packed copies, by MD5 (their sizes differ by 24 bytes too).
  const e = await dataError(t, ensureDataset('fashion-mnist', { cacheDir: freshCache(), baseUrl: srv.baseUrl, systemDirs: [] }), 'ECHECKSUM');
  t.regex(e.message, /8d4fb7e6c68d591d4c3dfef9ec88bf0d/);
});

// ---------------------------------------------------------------------------------------------
// The terminal progress bar

test('terminalProgress draws on a TTY and stays silent otherwise', (t) => {
  const quiet = new PassThrough();
  let quietOut = '';
  quiet.on('data', (d) => { quietOut += d; });
  const none = terminalProgress(quiet);
  none({ file: 'a.npz', received: 10, total: 100 });
  none.stop();
  t.is(quietOut, '');

  const tty = Object.assign(new PassThrough(), { isTTY: true, columns: 100 });
  let out = '';
  tty.on('data', (d) => { out += d; });
  const bar = terminalProgress(tty);
  bar({ file: 'k49-train-imgs.npz', received: 0, total: 2048 });
  bar({ file: 'k49-train-imgs.npz', received: 2048, total: 2048 });
  bar({ file: 'no-size.csv', received: 500 });
  bar.stop();
  bar.stop();
  t.regex(out, /k49-train-imgs\.npz/);
  t.regex(out, /100%/);
  t.regex(out, /no-size\.csv/);
});
