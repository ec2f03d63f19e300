#!/usr/bin/env node
// Entry point for the `aetherium` command. The sources are TypeScript run through tsx, so a fresh
// `npm ci` needs no build step before `npm start`.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
