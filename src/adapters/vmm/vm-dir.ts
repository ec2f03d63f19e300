/**
 * The on-disk layout every driver shares: one directory per VM under the driver's state dir,
 * `<stateDir>/<vmId>/`, holding the VM's files (`root/`) and small JSON records written atomically.
 * `owner.json` there names the worker that created the VM, so that a worker finding VMs in its
 * state dir can tell its own from those of another worker that (wrongly) shares the dir.
 */
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import type { Dirent } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { validateVmId } from './validation.ts';

const OWNER_FILE = 'owner.json';

interface OwnerRecord {
  worker_id: string;
  created_at: string;
}

export class StateDir {
  /** Absolute and normalised: the sandbox driver recognises its processes by paths built from it. */
  readonly path: string;

  constructor(path: string) {
    this.path = resolve(path);
  }

  vmDir(id: string): string {
    return join(this.path, validateVmId(id));
  }

  rootDir(id: string): string {
    return join(this.vmDir(id), 'root');
  }

  file(id: string, name: string): string {
    return join(this.vmDir(id), name);
  }

  async ensure(): Promise<void> {
    await mkdir(this.path, { recursive: true, mode: 0o700 });
  }

  /**
   * Creates the VM's directory, with `owner.json` in it when an owner is given. The directory is
   * built aside and renamed into place: another worker listing the state dir never sees a VM
   * being created without its owner, and so never cleans it up as an unowned leftover.
   */
  async makeVmDir(id: string, owner: string | null, mode = 0o700): Promise<void> {
    const dir = this.vmDir(id);
    if (owner === null) {
      await mkdir(dir, { mode });
      return;
    }
    // Not a valid VM id (it starts with "."), so vmIds() never lists it.
    const building = join(this.path, `.${id}.${randomBytes(4).toString('hex')}.new`);
    await mkdir(building, { mode });
    try {
      const record: OwnerRecord = { worker_id: owner, created_at: new Date().toISOString() };
      await writeJsonAtomic(join(building, OWNER_FILE), record);
      await rename(building, dir);
    } catch (err) {
      await removeTree(building);
      throw err;
    }
  }

  /** The worker that created the VM, or null when none is recorded (made before owners were, or by a driver without one). */
  async owner(id: string): Promise<string | null> {
    const record = await readJsonFile<OwnerRecord>(this.file(id, OWNER_FILE));
    return record && typeof record.worker_id === 'string' && record.worker_id !== '' ? record.worker_id : null;
  }

  /** Ids of the VM directories present (entries that are not valid VM ids are ignored). */
  async vmIds(): Promise<string[]> {
    let entries: Dirent[];
    try {
      entries = await readdir(this.path, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return entries
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .filter((name) => {
        try {
          validateVmId(name);
          return true;
        } catch {
          return false;
        }
      })
      .sort();
  }
}

export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, file);
}

/** The parsed file, or null when it is missing or unreadable (a half-written record counts as none). */
export async function readJsonFile<T>(file: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return null;
  }
}

export async function removeTree(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true, maxRetries: 3 });
}

export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
