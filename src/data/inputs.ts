// Where the data comes from: files the user names, a named data set (k49, kmnist, fashion-mnist),
// the course convention (X_images.npy / y_images.npy in the current directory), or arrays in
// memory; then the stratified train/validation/test split and the class names.
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { DataError, loadLabels, validateLabels } from './readers'
import { openImages, readParts, type ImageFile } from './dataset-file'
import { loadClassmap } from './classmap'
import { gather, stratifiedSplit, type SplitFractions } from './split'
import { loadNamedDataset, type DatasetName } from './datasets'

export interface Part {
  images: Uint8Array
  labels: Int32Array
}

export interface Inputs {
  train: Part
  validation: Part
  test: Part
  features: number
  classes: number
  classNames: string[]
  /** Human-readable origin, recorded in the run's config. */
  source: Record<string, unknown>
}

export interface InputOptions {
  /** Path of the images (.npy N×784 or N×28×28, .npz, IDX); default ./X_images.npy. */
  images?: string
  /** Path of the labels; default ./y_images.npy. */
  labels?: string
  /** A named data set instead of files: its official test set is kept as the test set. */
  dataset?: DatasetName
  cacheDir?: string
  /** Arrays already in memory (images N×features u8, labels N). */
  data?: { images: Uint8Array; labels: ArrayLike<number>; features?: number }
  /** Class names CSV (index,codepoint,char). Default: a *_classmap.csv next to the images when its size fits. */
  classmap?: string
  /** Fractions of the data, default 0.6/0.2/0.2 (with a named data set: validation is taken from its training set). */
  split?: SplitFractions
  seed: number
  onDownloadProgress?: (p: { file: string; received: number; total?: number }) => void
  /** Stops a download of a named data set. */
  signal?: AbortSignal
}

export const COURSE_IMAGES = 'X_images.npy'
export const COURSE_LABELS = 'y_images.npy'

/** Loads and splits the data; every problem is a DataError naming the file. */
export async function loadInputs(opts: InputOptions): Promise<Inputs> {
  const fractions = opts.split ?? { train: 0.6, validation: 0.2, test: 0.2 }
  if (opts.dataset) {
    const named = await loadNamedDataset(opts.dataset, { cacheDir: opts.cacheDir, onProgress: opts.onDownloadProgress, signal: opts.signal })
    const features = named.train.images.length / named.train.labels.length
    // validation comes out of the official training set, in the configured proportion
    const valShare = fractions.validation / (fractions.train + fractions.validation)
    const s = stratifiedSplit(named.train.labels, { train: 1 - valShare, validation: valShare, test: 0 }, opts.seed)
    const classes = Math.max(named.classNames.length, validateLabels(named.train.labels) , validateLabels(named.test.labels))
    return {
      train: gather(named.train.images, features, named.train.labels, s.train),
      validation: gather(named.train.images, features, named.train.labels, s.validation),
      test: { images: named.test.images, labels: named.test.labels },
      features,
      classes,
      classNames: named.classNames,
      source: { dataset: opts.dataset, files: named.files },
    }
  }

  // images in memory, or a file whose pixels are read only once the split is known, straight into its parts
  let images: Uint8Array | ImageFile, labels: Int32Array, features: number
  const source: Record<string, unknown> = {}
  if (opts.data) {
    features = opts.data.features ?? 784
    images = opts.data.images
    labels = Int32Array.from(opts.data.labels as ArrayLike<number>)
    source.data = 'in memory'
  } else {
    const imagesPath = resolve(opts.images ?? COURSE_IMAGES)
    const labelsPath = resolve(opts.labels ?? COURSE_LABELS)
    if (!opts.images && !opts.labels && !existsSync(imagesPath)) {
      throw new DataError(
        'ENODATA',
        `no data given and no ${COURSE_IMAGES} in ${process.cwd()}. Give data in one of these ways:\n` +
          `  --images X.npy --labels y.npy      (.npy N×784 or N×28×28, .npz, or IDX files)\n` +
          `  --dataset k49 | kmnist | fashion-mnist   (downloaded once to the cache directory)\n` +
          `  or run in a folder holding ${COURSE_IMAGES} and ${COURSE_LABELS} (the course layout)`,
      )
    }
    const img = await openImages(imagesPath)
    const lab = await loadLabels(labelsPath)
    if (img.n !== lab.n) {
      throw new DataError('ESHAPE', `holds ${img.n} images but ${labelsPath} holds ${lab.n} labels`, imagesPath)
    }
    images = img
    labels = lab.labels
    features = img.rows * img.cols
    Object.assign(source, { images: imagesPath, labels: labelsPath })
  }
  if (labels.length === 0) throw new DataError('EEMPTY', 'the data set is empty')
  const pixels = images instanceof Uint8Array ? images.length : images.n * features
  if (pixels !== labels.length * features) {
    throw new DataError('ESHAPE', `${pixels} pixels do not make ${labels.length} images of ${features} features`)
  }
  const classes = validateLabels(labels)
  const s = stratifiedSplit(labels, fractions, opts.seed)
  const parts = [s.train, s.validation, s.test]
  const [train, validation, test] =
    images instanceof Uint8Array
      ? parts.map((idx) => gather(images, features, labels, idx))
      : (await readParts(images, parts)).map((img, p) => ({ images: img, labels: parts[p].map((i) => labels[i]) }))
  return {
    train,
    validation,
    test,
    features,
    classes,
    classNames: await classNames(opts, classes),
    source: { ...source, split: fractions },
  }
}

/** Names from the classmap given, or one found next to the images whose size fits; else "0", "1", …. */
async function classNames(opts: InputOptions, classes: number): Promise<string[]> {
  if (opts.classmap) {
    const names = await loadClassmap(resolve(opts.classmap))
    if (names.length < classes) {
      throw new DataError('ECLASSMAP', `names ${names.length} classes but the labels use ${classes}`, resolve(opts.classmap))
    }
    return names.slice(0, Math.max(classes, names.length))
  }
  if (!opts.data) {
    const dir = dirname(resolve(opts.images ?? COURSE_IMAGES))
    for (const name of ['k49_classmap.csv', 'kmnist_classmap.csv', 'classmap.csv']) {
      const path = join(dir, name)
      if (!existsSync(path)) continue
      const names = await loadClassmap(path).catch(() => null)
      if (names && names.length === classes) return names
    }
  }
  return Array.from({ length: classes }, (_, k) => String(k))
}

/**
 * Refuses a split that leaves a part the run needs empty, before any training: train and
 * validation (early stopping, model selection) must hold samples; an empty test part is allowed
 * when `emptyTest` (the run then reports no test metrics) and refused otherwise.
 */
export function checkParts(inputs: Pick<Inputs, 'train' | 'validation' | 'test' | 'source'>, opts: { emptyTest: boolean }): void {
  const n = { train: inputs.train.labels.length, validation: inputs.validation.labels.length, test: inputs.test.labels.length }
  const empty = (['train', 'validation', 'test'] as const).filter((p) => n[p] === 0 && (p !== 'test' || !opts.emptyTest))
  if (empty.length === 0) return
  const split = inputs.source.split as SplitFractions | undefined
  const given = split ? `the split ${split.train},${split.validation},${split.test}` : 'the split'
  const why = { train: 'training needs samples', validation: 'early stopping and model selection need a validation part', test: 'the comparison of models is made on the test part' }
  throw new DataError('ESPLIT', `${given} leaves the ${empty.join(' and ')} part${empty.length > 1 ? 's' : ''} empty (${n.train} train / ${n.validation} validation / ${n.test} test samples): ${empty.map((p) => why[p]).join('; ')}. Give ${empty.length > 1 ? 'them fractions' : 'it a fraction'} above 0, e.g. 0.6,0.2,0.2`)
}
