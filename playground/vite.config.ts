import { defineConfig } from 'vite'

// SharedArrayBuffer (the compute backends' synchronous calls) needs a
// cross-origin isolated page: the same two headers in dev and preview; a
// static host of dist/ must send them too (docs/playground.md).
const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
}

export default defineConfig({
  root: import.meta.dirname,
  base: './',
  server: { headers: isolation },
  preview: { headers: isolation },
  // PGlite and pglite-infer load their .wasm and bundles by URL: pre-bundling
  // them would move the files away from the URLs they compute.
  optimizeDeps: { exclude: ['@electric-sql/pglite', 'pglite-infer'] },
  worker: { format: 'es' },
  build: {
    target: 'es2022',
    outDir: 'dist',
    emptyOutDir: true,
    rollupOptions: {
      // the playground, and a page using PGlite's own PGliteWorker (tests, docs/browser.md)
      input: {
        main: `${import.meta.dirname}/index.html`,
        workerClient: `${import.meta.dirname}/worker-client.html`,
      },
      // PGlite's loader evals the extensions' host hooks (docs/playground.md):
      // known, and not ours to change here
      onwarn(warning, warn) {
        if (warning.code === 'EVAL' && warning.id?.includes('@electric-sql/pglite')) return
        warn(warning)
      },
    },
  },
})
