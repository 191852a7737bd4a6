// A trained model on disk ⇄ a ready MLP: the safetensors file (model-file.ts) plus the engine.
import { MLP } from '../engine/mlp'
import { loadModel, saveModel, type ModelFile, type ModelMeta } from './model-file'

export interface LoadedModel {
  model: MLP
  meta: ModelFile['meta']
  /** Class names from the file, or "0", "1", … */
  classNames: string[]
}

export async function loadTrainedModel(path: string, options: { threads?: number } = {}): Promise<LoadedModel> {
  const file = await loadModel(path)
  const model = new MLP({ layers: file.meta.layers, seed: file.meta.seed ?? 0, threads: options.threads })
  model.setWeights(file.weights)
  const classes = file.meta.layers[file.meta.layers.length - 1]
  return { model, meta: file.meta, classNames: file.meta.classNames ?? Array.from({ length: classes }, (_, k) => String(k)) }
}

export async function saveTrainedModel(path: string, model: MLP, meta: Omit<ModelMeta, 'layers'> = {}): Promise<void> {
  await saveModel(path, { ...meta, layers: [...model.layers] }, model.getWeights())
}
