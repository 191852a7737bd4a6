// Two search trials on a 2-core machine: one after another with 2 engine threads each, or side by
// side with 1 thread each? Measures both on the real KMNIST data for the search's typical models,
// alternating the order of the two arrangements over several rounds. Run:
//   npx tsx bench/trial-concurrency.ts [rounds=3] [epochs=3]
// (README "Experiments and reports" records a measurement; the load average is printed because
// other work on the machine changes the answer.)
import { existsSync } from 'node:fs'
import { loadavg, cpus } from 'node:os'
import { join } from 'node:path'
import { loadInputs } from '../src/data/inputs'
import { Trial, trialData, resolveModelConfig, type ModelConfig } from '../src/training/trial'

async function main() {
  const rounds = Number(process.argv[2] ?? 3)
  const epochs = Number(process.argv[3] ?? 3)
  const dir = join(__dirname, '..', '..', 'shared', 'data', 'kmnist')
  if (!existsSync(join(dir, 'X_images.npy'))) throw new Error(`${dir} is absent: this benchmark needs the real KMNIST files`)
  const inputs = await loadInputs({ images: join(dir, 'X_images.npy'), labels: join(dir, 'y_images.npy'), seed: 1 })
  const data = trialData(inputs.train, inputs.validation, inputs.features, inputs.classes)
  const cases: [string, Partial<ModelConfig>][] = [
    ['[512] adam batch 32', { hidden: [512], batchSize: 32 }],
    ['[256,128] adam batch 64', { hidden: [256, 128], batchSize: 64 }],
    ['[512] sgd batch 128', { hidden: [512], batchSize: 128, optimizer: 'sgd', lr: 0.1 }],
  ]
  console.log(`${cpus()[0].model}, ${cpus().length} cores; ${rounds} rounds × 2 trials × ${epochs} epochs per case; load average at start ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
  const totals = { sequential: 0, sideBySide: 0 }
  for (const [name, c] of cases) {
    const seq: number[] = []
    const par: number[] = []
    for (let r = 0; r < rounds; r++) {
      const cfg = (seed: number) => resolveModelConfig({ ...c, seed })
      const sequential = async () => {
        const t0 = performance.now()
        for (const s of [1, 2]) await new Trial(cfg(s), data, { threads: 2 }).advance(epochs)
        seq.push((performance.now() - t0) / 1000)
      }
      const sideBySide = async () => {
        const t0 = performance.now()
        await Promise.all([1, 2].map((s) => new Trial(cfg(s), data, { threads: 1 }).advance(epochs)))
        par.push((performance.now() - t0) / 1000)
      }
      if (r % 2 === 0) { await sequential(); await sideBySide() } else { await sideBySide(); await sequential() }
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
    totals.sequential += med(seq)
    totals.sideBySide += med(par)
    console.log(`${name}: one after another, 2 threads: median ${med(seq).toFixed(2)} s (${seq.map((x) => x.toFixed(2)).join(', ')}); side by side, 1 thread each: median ${med(par).toFixed(2)} s (${par.map((x) => x.toFixed(2)).join(', ')})`)
  }
  console.log(`sum of medians: one after another ${totals.sequential.toFixed(2)} s, side by side ${totals.sideBySide.toFixed(2)} s; load average at end ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
}
main().catch((e) => {
  console.error(e)
  process.exit(1)
})
