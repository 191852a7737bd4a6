'use strict'
// kana-native side of `npm run bench` (scripts/bench.mjs): ONE measurement in a fresh process, so
// warm-up, allocator state and peak RSS belong to that measurement alone. Not a test.
//
//   node --expose-gc bench/kana_child.cjs '<json spec>'
//
// spec: { workload: 'train'|'gd'|'infer'|'k49', data, labels (raw u8 / int32 files), features,
//         offset, n (rows), layers, batch, threads, lr, steps (gd passes / infer passes), seed,
//         optional activation, dropout, batchNorm (the F1 layers), augment (fit's augment option:
//         every training batch augmented, issue F2);
//         k49: images, imageLabels (.npy files of the n rows), optional load: 'copy' }
// Prints one line "RESULT {json}".
//
// Workloads
//   train  Adam, one epoch over n rows at `batch`, after an untimed warm-up epoch on 4096 rows.
//   gd     full-batch gradient descent: 1 untimed step, then `steps` timed steps (one fit each).
//   infer  predictProba over n rows: 1 untimed pass on 1024 rows, then `steps` timed passes.
//   augment the engine's augmentation alone (augmentBatch, the global thread pool) of `batch` rows of
//          the file, `steps` timed calls (each another optimiser step, so other parameters) after
//          `warmup` untimed ones; seconds = the median call. spec.augment: the ranges.
//   k49    the K49-sized epoch (Adam, batch 512) with peak-RSS accounting:
//            - the model is built and warmed up (on 4096 rows) before the big data set is read;
//            - the Dataset is built straight from the .npy files (loadDataset: the pixels go from
//              the file into native memory in 4 MiB chunks, never whole in JavaScript), or, with
//              load: 'copy' (the earlier way, for comparison), the u8 images are read into one
//              Uint8Array, the Dataset copies them into native memory, the JS copy is dropped;
//            - VmHWM is then reset (/proc/self/clear_refs ← 5) so the "training" peak covers the
//              epoch only; the peak up to then (loading) is kept, so the whole-process peak is the
//              larger of the two.
const fs = require('node:fs')
const path = require('node:path')

const kana = require(path.join(__dirname, '..', 'index.js'))
const { MLP, Dataset } = kana

const spec = JSON.parse(process.argv[2])
const F = spec.features ?? 784

/** Read rows [off, off+n) of the raw u8 image file and the int32 label file. */
function readRows(off, n) {
  const images = new Uint8Array(n * F)
  const labels = new Int32Array(n)
  const fi = fs.openSync(spec.data, 'r')
  let done = 0
  while (done < images.length) {
    // readSync moves at most 2 GiB per call; loop anyway for robustness
    const got = fs.readSync(fi, images, done, Math.min(images.length - done, 1 << 30), off * F + done)
    if (got <= 0) throw new Error('short read on ' + spec.data)
    done += got
  }
  fs.closeSync(fi)
  const fl = fs.openSync(spec.labels, 'r')
  fs.readSync(fl, new Uint8Array(labels.buffer), 0, n * 4, off * 4)
  fs.closeSync(fl)
  return { images, labels }
}

/** VmRSS / VmHWM of this process in bytes (Linux), or null. */
function vm() {
  try {
    const s = fs.readFileSync('/proc/self/status', 'utf8')
    const kb = (k) => Number((s.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm')) || [])[1]) * 1024
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') }
  } catch {
    return null
  }
}

const now = () => performance.now() / 1000
/** CPU seconds of this process so far, all threads (user + system): on a machine shared with other
 *  work it counts only the time our threads ran, so samples / (cpuSeconds / threads) estimates the
 *  speed on a machine of our own (pessimistically: it includes threads spinning while they wait). */
const cpu = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor((a.length - 1) / 2)]

async function main() {
  const out = { cpuFeatures: kana.native.cpuFeatures(), threads: spec.threads }
  // the F1 layers (bench/layers.mjs): activation, dropout, batch norm; absent = the plain ReLU MLP
  const arch = {}
  if (spec.activation) arch.activation = spec.activation
  if (spec.dropout) arch.dropout = spec.dropout
  if (spec.batchNorm) arch.batchNorm = true
  const model = new MLP({ layers: spec.layers, seed: spec.seed ?? 1, threads: spec.threads, ...arch })
  const adam = { epochs: 1, optimizer: 'adam', lr: spec.lr ?? 1e-3, batchSize: spec.batch }
  if (spec.augment && spec.workload !== 'augment') adam.augment = spec.augment

  if (spec.workload === 'train') {
    {
      const w = readRows(spec.offset, Math.min(4096, spec.n))
      await model.fit(new Dataset(w.images, w.labels, F), adam) // warm-up epoch (untimed)
    }
    const { images, labels } = readRows(spec.offset, spec.n)
    const ds = new Dataset(images, labels, F)
    const [t0, c0] = [now(), cpu()]
    const r = await model.fit(ds, adam)
    out.seconds = now() - t0
    out.cpuSeconds = cpu() - c0
    Object.assign(out, { samples: spec.n, steps: r.steps, loss: r.loss })
  } else if (spec.workload === 'gd') {
    const { images, labels } = readRows(spec.offset, spec.n)
    const ds = new Dataset(images, labels, F)
    const gd = { epochs: 1, optimizer: 'gd', lr: spec.lr ?? 0.1 }
    await model.fit(ds, gd) // warm-up step (untimed)
    const times = []
    const cpus = []
    let r
    for (let s = 0; s < (spec.steps ?? 3); s++) {
      const [t0, c0] = [now(), cpu()]
      r = await model.fit(ds, gd)
      times.push(now() - t0)
      cpus.push(cpu() - c0)
    }
    Object.assign(out, { seconds: median(times), stepTimes: times, cpuSeconds: median(cpus), samples: spec.n, steps: 1, loss: r.loss })
  } else if (spec.workload === 'infer') {
    const { images } = readRows(spec.offset, spec.n)
    await model.predictProba(new Dataset(images.subarray(0, 1024 * F), null, F)) // warm-up
    const ds = new Dataset(images, null, F)
    const times = []
    const cpus = []
    let p
    for (let s = 0; s < (spec.steps ?? 3); s++) {
      const [t0, c0] = [now(), cpu()]
      p = await model.predictProba(ds)
      times.push(now() - t0)
      cpus.push(cpu() - c0)
    }
    out.cpuSeconds = median(cpus)
    let check = 0
    for (let i = 0; i < p.length; i += spec.layers.at(-1)) check += p[i]
    Object.assign(out, { seconds: median(times), passTimes: times, samples: spec.n, checksum: check })
  } else if (spec.workload === 'augment') {
    const { images } = readRows(spec.offset, spec.batch)
    for (let s = 0; s < (spec.warmup ?? 5); s++) kana.augmentBatch(images, spec.batch, spec.augment, spec.seed ?? 1, s)
    const times = []
    const cpus = []
    let check = 0
    for (let s = 0; s < (spec.steps ?? 50); s++) {
      const [t0, c0] = [now(), cpu()]
      const batch = kana.augmentBatch(images, spec.batch, spec.augment, spec.seed ?? 1, 1000 + s)
      times.push(now() - t0)
      cpus.push(cpu() - c0)
      check += batch[400]
    }
    Object.assign(out, { seconds: median(times), cpuSeconds: median(cpus), samples: spec.batch, calls: times.length, checksum: check })
  } else if (spec.workload === 'k49') {
    const base = vm()
    {
      const w = readRows(spec.offset, 4096)
      await model.fit(new Dataset(w.images, w.labels, F), adam) // warm-up (before the big read)
    }
    global.gc?.()
    const beforeLoad = vm()
    let ds
    const l0 = now()
    if (spec.load === 'copy') {
      let { images, labels } = readRows(spec.offset, spec.n)
      ds = new Dataset(images, labels, F)
      images = labels = null // the documented pattern: the JS copies may be dropped
    } else {
      ds = await kana.loadDataset(spec.images, spec.imageLabels, { onOpen: (i) => (out.streamed = i.streamed) })
      if (ds.length !== spec.n || ds.features !== F) throw new Error(`loaded ${ds.length}×${ds.features}, expected ${spec.n}×${F}`)
    }
    out.load = spec.load ?? 'file'
    out.loadSeconds = now() - l0
    global.gc?.()
    await new Promise((r) => setTimeout(r, 50))
    global.gc?.()
    const loaded = vm() // its hwm is the peak so far: model + native copy + what loading needed on the side
    let hwmReset = false
    try {
      fs.writeFileSync('/proc/self/clear_refs', '5') // resets VmHWM to the current RSS
      hwmReset = true
    } catch {}
    const [t0, c0] = [now(), cpu()]
    const r = await model.fit(ds, adam)
    out.seconds = now() - t0
    out.cpuSeconds = cpu() - c0
    const after = vm()
    // clear_refs resets getrusage's maxRSS too, so the whole-process peak is the larger of the
    // peak before the reset (the load transient) and the peak after it (the epoch)
    const loadPeak = loaded?.hwm
    Object.assign(out, {
      samples: spec.n,
      steps: r.steps,
      loss: r.loss,
      rss: {
        baseline: base?.rss, // node + addon, before any data
        beforeLoad: beforeLoad?.rss,
        afterLoad: loaded?.rss, // Dataset built, any JS copy collected
        hwmReset,
        loadPeak, // VmHWM up to the end of loading (with load: 'copy', the JS copy of the images too)
        trainingPeak: hwmReset ? after?.hwm : null, // VmHWM over the epoch only
        afterTrain: after?.rss,
        wholeProcessPeak: Math.max(loadPeak ?? 0, after?.hwm ?? 0, hwmReset ? 0 : process.resourceUsage().maxRSS * 1024),
      },
    })
  } else {
    throw new Error('unknown workload ' + spec.workload)
  }
  model.free()
  process.stdout.write('RESULT ' + JSON.stringify(out) + '\n')
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
