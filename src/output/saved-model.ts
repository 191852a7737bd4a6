// A trained model on disk ⇄ a ready MLP: the safetensors file (model-file.ts) plus the engine.
import { MLP } from '../engine/mlp'
import { loadModel, saveModel, type ModelFile, type ModelMeta } from './model-file'

export interface LoadedModel {
  model: MLP
  meta: ModelFile['meta']
  /** Class names from the file, or "0", "1", … */
  classNames: string[]
}

/**
 * The engine's model with the file's architecture (activation, batch norm and its ε), weights and
 * batch-norm state. A version-1 file is a ReLU model without batch norm. Dropout is not restored:
 * the file records it for information, and inference never drops.
 */
export async function loadTrainedModel(path: string, options: { threads?: number } = {}): Promise<LoadedModel> {
  const file = await loadModel(path)
  const { layers, seed, activation, leakySlope, batchNorm, bnEps } = file.meta
  // The engine refuses leakySlope without leaky-relu and bnEps without batch norm; the file
  // holds each only with its setting.
  const model = new MLP({ layers, seed: seed ?? 0, threads: options.threads, activation, leakySlope, batchNorm, bnEps })
  try {
    model.setWeights(file.weights)
    model.setNormState(file.norm)
  } catch (err) {
    model.free()
    throw err
  }
  const classes = layers[layers.length - 1]
  return { model, meta: file.meta, classNames: file.meta.classNames ?? Array.from({ length: classes }, (_, k) => String(k)) }
}

/** What a model file needs to rebuild `model`: its sizes and architecture (the training settings go in `training`). */
export function architectureMeta(model: MLP): Pick<ModelMeta, 'layers' | 'activation' | 'leakySlope' | 'batchNorm' | 'bnEps' | 'dropout'> {
  return {
    layers: [...model.layers],
    activation: model.activation,
    leakySlope: model.activation === 'leaky-relu' ? model.leakySlope : undefined,
    batchNorm: model.batchNorm,
    bnEps: model.batchNorm ? model.bnEps : undefined,
    dropout: [...model.dropout],
  }
}

export async function saveTrainedModel(path: string, model: MLP, meta: Omit<ModelMeta, 'layers'> = {}): Promise<void> {
  await saveModel(path, { ...meta, ...architectureMeta(model) }, model.getWeights(), model.getNormState())
}
