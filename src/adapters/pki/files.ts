/**
 * Reading and writing the PEM files of the PKI. A key file is created mode 0600 (this user only)
 * and no file is replaced unless asked: overwriting a CA key by accident would orphan every
 * certificate it signed. A pair of files is written only when neither exists, so a refusal never
 * leaves a new certificate beside an old key.
 */
import { lstat, open, readFile } from 'node:fs/promises';

/**
 * A PKI file that is missing, cannot be read or written (`io`), does not hold what it should
 * (`invalid`), or is in the way of a new one (`exists`); `file` names it.
 */
export class PkiFileError extends Error {
  constructor(
    readonly file: string,
    message: string,
    readonly reason: 'missing' | 'io' | 'invalid' | 'exists',
  ) {
    super(message);
    this.name = 'PkiFileError';
  }
}

export interface PemFile {
  path: string;
  pem: string;
  /** A private key: mode 0600 instead of 0644. */
  secret?: boolean;
}

export async function readPemFile(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new PkiFileError(path, `${what} ${path} does not exist`, 'missing');
    throw new PkiFileError(path, `cannot read ${what} ${path}: ${(err as Error).message}`, 'io');
  }
}

export async function writePemFiles(files: PemFile[], options: { force?: boolean } = {}): Promise<void> {
  if (!options.force) {
    for (const file of files) {
      if (await exists(file.path)) {
        throw new PkiFileError(file.path, `${file.path} already exists; pass --force to replace it`, 'exists');
      }
    }
  }
  for (const file of files) await writePemFile(file, options.force ?? false);
}

async function writePemFile(file: PemFile, force: boolean): Promise<void> {
  const mode = file.secret ? 0o600 : 0o644;
  // 'wx' fails if the file appeared since the check above, rather than overwrite it.
  const handle = await open(file.path, force ? 'w' : 'wx', mode).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EEXIST')
      throw new PkiFileError(file.path, `${file.path} already exists; pass --force to replace it`, 'exists');
    throw new PkiFileError(file.path, `cannot write ${file.path}: ${err.message}`, 'io');
  });
  try {
    // An existing file keeps its mode when truncated, and the umask may have narrowed a new one.
    await handle.chmod(mode);
    await handle.writeFile(file.pem.endsWith('\n') ? file.pem : `${file.pem}\n`);
  } finally {
    await handle.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
