/**
 * The web UI's build. `base: './'`: every asset is relative to the page's `<base href>`, which the
 * control plane writes for the path it is served under, so one build works at `/` and behind a
 * proxy's prefix. The SDK is bundled from its source (src/sdk/browser.ts); Chart.js and xterm.js
 * are chunks of their own, loaded by the pages that draw a chart or open a terminal.
 */
import { fileURLToPath } from 'node:url';
import tailwindcss from '@tailwindcss/vite';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
// `npm run dev:web` proxies the API to a running `aetherium dev` (AETHERIUM_API, default :8080).
const api = process.env.AETHERIUM_API ?? 'http://127.0.0.1:8080';

/** The SDK, the contract and the domain it bundles must not reach Node's modules: fail the build if they do. */
const browserOnly = {
  name: 'aetherium:no-node-modules',
  enforce: 'pre' as const,
  resolveId(id: string, importer: string | undefined) {
    if (id.startsWith('node:')) throw new Error(`${importer ?? 'the UI'} imports ${id}, which a browser does not have`);
    return null;
  },
};

export default defineConfig({
  root: here('.'),
  base: './',
  plugins: [browserOnly, react(), tailwindcss()],
  resolve: { alias: { '@aetherium/sdk': here('../src/sdk/browser.ts') } },
  build: {
    outDir: here('dist'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    // The budget that matters is measured by `npm run bench:ui`: initial JS gzipped under 350 KB.
    chunkSizeWarningLimit: 800,
  },
  server: {
    port: 5173,
    proxy: { '/api': { target: api, ws: true, changeOrigin: false } },
  },
});
