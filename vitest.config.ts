import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // PGlite instances are heavy (a whole Postgres per test file): keep the
    // 2-core CI machine from running too many at once.
    maxWorkers: 2,
    // a file wedged in a synchronous WASM loop fails with its stack (test/helpers/watchdog.ts)
    setupFiles: ['test/helpers/watchdog.ts'],
  },
})
