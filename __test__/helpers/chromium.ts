// Where the browser tests look for a Chromium-family browser, per platform: $CHROMIUM first, then
// the usual install places. On Windows, Edge (Chromium-based, on every Windows 10/11) is last.
import { existsSync } from 'node:fs'
import * as path from 'node:path'

export function chromiumCandidates(platform: NodeJS.Platform, env: NodeJS.ProcessEnv): string[] {
  const fromEnv = env.CHROMIUM ? [env.CHROMIUM] : []
  if (platform === 'win32') {
    const j = path.win32.join
    const roots = [env.PROGRAMFILES ?? 'C:\\Program Files', env['PROGRAMFILES(X86)'] ?? 'C:\\Program Files (x86)', env.LOCALAPPDATA].filter((r): r is string => !!r)
    return [
      ...fromEnv,
      ...roots.map((r) => j(r, 'Google', 'Chrome', 'Application', 'chrome.exe')),
      ...roots.map((r) => j(r, 'Chromium', 'Application', 'chrome.exe')),
      ...roots.slice(0, 2).map((r) => j(r, 'Microsoft', 'Edge', 'Application', 'msedge.exe')),
    ]
  }
  if (platform === 'darwin') {
    return [...fromEnv, '/Applications/Chromium.app/Contents/MacOS/Chromium', '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome']
  }
  return [...fromEnv, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']
}

/** The first candidate that exists, or the first candidate (for the "absent" message). */
export function findChromium(platform = process.platform, env = process.env, exists: (p: string) => boolean = existsSync): string {
  const all = chromiumCandidates(platform, env)
  return all.find(exists) ?? all[0]
}
