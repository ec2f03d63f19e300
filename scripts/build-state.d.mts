/** Types of build-state.mjs, for the TypeScript that imports it (bench/cli.ts). */
export declare const BUILD_INPUTS: string[];
export declare const BUILD_STAMP: string;
export declare function newestInput(root: string): number;
export declare function buildState(root: string): 'missing' | 'stale' | 'fresh';
