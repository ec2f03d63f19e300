/** The options every command takes (see main.ts). */
export type OutputFormat = 'table' | 'wide' | 'json';

export interface GlobalOptions {
  /** The control plane; unset: the SDK resolves it (AETHERIUM_API, the context, http://localhost:8080). */
  api?: string;
  token?: string;
  caFile?: string;
  context?: string;
  json: boolean;
  output?: OutputFormat;
  quiet: boolean;
}

/** `--json` is `-o json`. */
export function outputFormat(options: GlobalOptions): OutputFormat {
  return options.json ? 'json' : (options.output ?? 'table');
}
