// The CLI as a test drives it: `cli(args)` runs `kana-native …` to its end; `start(args)` runs it in
// the background with its stderr collected, `until(re)` resolving once stderr matches.
import { spawn, spawnSync } from 'node:child_process'
import { join } from 'node:path'

export const bin = join(__dirname, '..', '..', 'bin', 'kana-native.js')

export function cliIn(cwd: string) {
  const env = { ...process.env, NO_COLOR: '1' }
  function cli(args: string[]) {
    const r = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', env })
    return { code: r.status, stdout: r.stdout, stderr: r.stderr }
  }
  function start(args: string[]) {
    const child = spawn(process.execPath, [bin, ...args], { cwd, env })
    let stderr = ''
    let done = false
    const waiting: [RegExp, () => void][] = []
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d
      for (const [re, go] of waiting) if (re.test(stderr)) go()
    })
    child.stdout.resume()
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('close', (code, signal) => { done = true; res({ code, signal }) }))
    const until = (re: RegExp) => Promise.race([
      new Promise<void>((res) => (re.test(stderr) ? res() : waiting.push([re, res]))),
      exit.then(() => { if (!re.test(stderr)) throw new Error(`the run ended before ${re}:\n${stderr}`) }),
    ])
    return { child, exit, until, stderr: () => stderr, done: () => done }
  }
  return { cli, start }
}
