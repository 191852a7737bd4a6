/**
 * Crash-safe file replacement: write a temp file beside the target, fsync it, rename it over the
 * target, fsync the directory.
 *
 * Why: `fs.writeFile` truncates first and writes after, so a crash, Ctrl-C or full disk midway
 * leaves a torn file — for a model or checkpoint, hours of training lost. rename(2) within one
 * directory is atomic on POSIX (and MoveFileEx replaces atomically on NTFS), so readers see the
 * old file or the new one, never a mix. On Windows a rename refused because the target is open
 * elsewhere for a moment is retried (renameReplacing).
 *
 * Limits: the target's permission bits are kept, its owner and hard links are not (the target
 * becomes a new inode); a symlink target is replaced by a regular file. A process killed between
 * creating and renaming its temp file leaves that one temp file behind; its name
 * (`.<base>.<pid>.<random>.tmp`) says which process made it.
 */
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

/** Same directory as the target (rename across file systems is not atomic), unique per call. */
function tempPathFor(target: string): string {
  // Clip the base so the temp name stays under the usual 255-byte name limit.
  const base = path.basename(target).slice(0, 180);
  return path.join(path.dirname(target), `.${base}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/** Permission bits of an existing target, so replacing a 0600 file does not widen it to 0644. */
function existingMode(target: string): number | undefined {
  try {
    return fs.statSync(target).mode & 0o7777;
  } catch {
    return undefined; // no target yet (or unreadable: the open/rename below reports the real cause)
  }
}

/** An Error naming the target and saying why, in words, with the system error as `cause`. */
function describe(target: string, err: unknown): Error {
  const e = err as NodeJS.ErrnoException;
  const dir = path.dirname(target);
  let why: string;
  switch (e?.code) {
    case 'ENOENT': why = fs.existsSync(dir) ? e.message : `directory ${dir} does not exist`; break;
    case 'ENOTDIR': why = `${dir} is not a directory`; break;
    case 'EISDIR': why = `${target} is a directory`; break;
    case 'EACCES': case 'EPERM': why = `permission denied (${e.message})`; break;
    case 'ENOSPC': why = 'no space left on device'; break;
    case 'EROFS': why = 'read-only file system'; break;
    default: why = e instanceof Error ? e.message : String(err);
  }
  const out = new Error(`cannot write ${target}: ${why}`, { cause: err });
  if (typeof e?.code === 'string') (out as NodeJS.ErrnoException).code = e.code;
  return out;
}

/** Atomically replaces (or creates) `target` with `data`. Strings are written as UTF-8. */
export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  const tmp = tempPathFor(target);
  let fh: fsp.FileHandle | undefined;
  try {
    const mode = existingMode(target);
    fh = await fsp.open(tmp, 'wx', 0o666); // 'wx': never reuse someone else's file of that name
    if (mode !== undefined) await fh.chmod(mode); // explicit: open's mode is filtered by umask
    await fh.writeFile(data);
    await fh.sync(); // data on disk before the rename makes it visible
    await fh.close();
    fh = undefined;
    await renameReplacing(tmp, target);
  } catch (err) {
    await fh?.close().catch(() => {});
    await fsp.rm(tmp, { force: true }).catch(() => {});
    throw describe(target, err);
  }
  await syncDir(path.dirname(target));
}

/** Synchronous twin of {@link writeFileAtomic}, for exit handlers and CLIs. */
export function writeFileAtomicSync(target: string, data: string | Uint8Array): void {
  const tmp = tempPathFor(target);
  let fd: number | undefined;
  try {
    const mode = existingMode(target);
    fd = fs.openSync(tmp, 'wx', 0o666);
    if (mode !== undefined) fs.fchmodSync(fd, mode);
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    renameReplacingSync(tmp, target);
  } catch (err) {
    if (fd !== undefined) try { fs.closeSync(fd); } catch { /* already failing */ }
    try { fs.rmSync(tmp, { force: true }); } catch { /* best effort */ }
    throw describe(target, err);
  }
  syncDirSync(path.dirname(target));
}

/**
 * Windows refuses to rename over a file that another process holds open at that moment — a reader,
 * or an antivirus or indexing scan of the file just written — with EPERM, EACCES or EBUSY, where
 * POSIX rename(2) simply replaces it. Such a refusal lasts milliseconds, so on win32 the rename is
 * retried with growing pauses (about 4 s in all) before it counts as failed, as npm's
 * write-file-atomic and graceful-fs do. Other platforms and other errors fail at once.
 */
export const RENAME_RETRY_MS = [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000];

export function retryRename(err: unknown, attempt: number, platform: NodeJS.Platform = process.platform): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return platform === 'win32' && (code === 'EPERM' || code === 'EACCES' || code === 'EBUSY') && attempt < RENAME_RETRY_MS.length;
}

export async function renameReplacing(from: string, to: string, platform: NodeJS.Platform = process.platform, rename = fsp.rename): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await rename(from, to);
    } catch (err) {
      if (!retryRename(err, attempt, platform)) throw err;
      await new Promise((r) => setTimeout(r, RENAME_RETRY_MS[attempt]));
    }
  }
}

export function renameReplacingSync(from: string, to: string, platform: NodeJS.Platform = process.platform, rename = fs.renameSync): void {
  for (let attempt = 0; ; attempt++) {
    try {
      return rename(from, to);
    } catch (err) {
      if (!retryRename(err, attempt, platform)) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, RENAME_RETRY_MS[attempt]); // a synchronous sleep
    }
  }
}

/**
 * The rename is durable only once the directory entry is flushed. Best effort: some platforms
 * (Windows) and file systems cannot open or fsync a directory, and the data is already safe.
 */
async function syncDir(dir: string): Promise<void> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(dir, 'r');
    await fh.sync();
  } catch { /* best effort */ } finally {
    await fh?.close().catch(() => {});
  }
}

function syncDirSync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch { /* best effort */ } finally {
    if (fd !== undefined) try { fs.closeSync(fd); } catch { /* ignore */ }
  }
}
