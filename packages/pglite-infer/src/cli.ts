#!/usr/bin/env node
/**
 * The `pglite-infer` bin of this package: runs the command line of
 * `@pglite-infer/cli`, so `npx pglite-infer` works after installing
 * `pglite-infer` alone.
 */
import '@pglite-infer/cli/main'
