/**
 * The Aetherium TypeScript SDK (`import { Aetherium } from 'aetherium/sdk'`). See the README's SDK
 * section. Every data type is derived from the API contract (src/contract).
 */
export { Aetherium } from './client.ts';
export type { ClientOptions } from './settings.ts';
export { DEFAULT_API_URL, DEFAULT_REQUEST_TIMEOUT_MS } from './settings.ts';
export * from './common-exports.ts';
// Only in Node: reading the configuration file.
export { ConfigError } from './errors.ts';
export {
  addContext,
  configPath,
  currentContext,
  listContexts,
  removeContext,
  resolveContext,
  useContext,
} from './config.ts';
export type { AddContextOptions, ConfigLocation, ContextInfo, ResolvedContext } from './config.ts';
