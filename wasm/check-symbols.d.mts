/** Imports of a side module that neither pglite.wasm nor the loader provides. */
export function missingSymbols(sideModuleBytes: Uint8Array, mainModuleBytes: Uint8Array): string[]
