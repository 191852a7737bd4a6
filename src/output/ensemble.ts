// Ensembles of trained models (issue F2): several model files predicting together by averaging
// their softmax probabilities. The models must agree on the input size and the classes.
import { Dataset, type Evaluation, type Labels, type MLP } from '../engine/mlp'
import { argmaxRows, confusionFromPredictions, crossEntropy } from './metrics'
import { loadTrainedModel, type LoadedModel } from './saved-model'

export interface Ensemble {
  /** The model files, in the order given. */
  readonly paths: readonly string[]
  readonly models: readonly MLP[]
  readonly inputs: number
  readonly classes: number
  /** The first file's class names (or "0", "1", …). */
  readonly classNames: string[]
  /** Mean of the models' probabilities, N×K row-major (f64 sums, stored as f32). */
  predictProba(data: Dataset | Uint8Array): Promise<Float32Array>
  /**
   * Loss (mean −log p̄(true class), p̄ floored at 1e-12 as metrics.crossEntropy does), accuracy
   * (argmax of p̄, ties to the lower class) and confusion matrix of the averaged probabilities.
   */
  evaluate(images: Uint8Array, labels: Labels): Promise<Evaluation>
  free(): void
}

/** Mean of equally shaped probability arrays: Σ in f64 in the given order, ÷ M, rounded to f32. */
export function meanProbabilities(probs: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(probs[0].length)
  for (let i = 0; i < out.length; i++) {
    let s = 0
    for (const p of probs) s += p[i]
    out[i] = s / probs.length
  }
  return out
}

/** Loads every file; refuses (naming both files) models that disagree on input size, class count or class names. */
export async function loadEnsemble(paths: readonly string[], options: { threads?: number } = {}): Promise<Ensemble> {
  if (!Array.isArray(paths) || paths.length === 0) throw new RangeError('an ensemble needs at least one model file')
  const loaded: LoadedModel[] = []
  try {
    for (const p of paths) {
      const m = await loadTrainedModel(p, options)
      loaded.push(m)
      const first = loaded[0]
      const [a, b] = [first.model, m.model]
      const clash =
        a.inputs !== b.inputs ? `takes ${b.inputs} inputs but ${paths[0]} takes ${a.inputs}`
        : a.classes !== b.classes ? `has ${b.classes} classes but ${paths[0]} has ${a.classes}`
        : first.meta.classNames && m.meta.classNames && first.meta.classNames.join('\u0000') !== m.meta.classNames.join('\u0000')
          ? `names its classes ${JSON.stringify(m.meta.classNames.slice(0, 5))}… but ${paths[0]} names them ${JSON.stringify(first.meta.classNames.slice(0, 5))}…`
          : undefined
      if (clash) throw new RangeError(`cannot ensemble these models: ${p} ${clash}`)
    }
  } catch (e) {
    for (const m of loaded) m.model.free()
    throw e
  }
  const models = loaded.map((m) => m.model)
  const { inputs, classes } = models[0]
  const predictProba = async (data: Dataset | Uint8Array) => {
    const set = data instanceof Dataset ? data : new Dataset(data, null, inputs)
    const probs: Float32Array[] = []
    for (const m of models) probs.push(await m.predictProba(set)) // one after another: each model already uses every thread
    return meanProbabilities(probs)
  }
  async function evaluate(images: Uint8Array, labels: Labels): Promise<Evaluation> {
    if (labels == null) throw new TypeError('labels are required to evaluate')
    const truth = Int32Array.from(labels as ArrayLike<number | bigint>, Number)
    const p = await predictProba(new Dataset(images, truth, inputs))
    const preds = argmaxRows(p, classes)
    const confusion = confusionFromPredictions(truth, preds, classes)
    let correct = 0
    for (let i = 0; i < truth.length; i++) if (preds[i] === truth[i]) correct++
    return { loss: crossEntropy(p, truth, classes), accuracy: correct / truth.length, confusion }
  }
  return {
    paths: [...paths], models, inputs, classes, classNames: loaded[0].classNames,
    predictProba, evaluate,
    free: () => models.forEach((m) => m.free()),
  }
}
