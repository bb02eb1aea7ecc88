// check-symbols.mjs SIDE_MODULE.so PGLITE.wasm
//
// Every function and global that a side module imports from `env` or
// `GOT.mem` / `GOT.func` must be exported by pglite.wasm, or be something the
// emscripten dynamic loader provides itself. PGlite loads a module with a
// missing function import silently, and calling it later returns nothing and
// hangs the next query; so the build fails here instead, naming the symbols.
import { readFileSync } from 'node:fs'

// Provided by emscripten's dynamic linker when it instantiates a side module.
const LOADER_PROVIDED = new Set([
  'memory',
  '__memory_base',
  '__table_base',
  '__stack_pointer',
  '__indirect_function_table',
  '__c_longjmp',
  '__cpp_exception',
])

export function missingSymbols(sideModuleBytes, mainModuleBytes) {
  const side = new WebAssembly.Module(sideModuleBytes)
  const main = new WebAssembly.Module(mainModuleBytes)
  const exported = new Set(WebAssembly.Module.exports(main).map((e) => e.name))
  // EM_JS functions arrive as `__em_js__NAME` exports of the side module
  // itself; the loader turns each into the import NAME.
  const emJs = new Set(
    WebAssembly.Module.exports(side)
      .filter((e) => e.name.startsWith('__em_js__'))
      .map((e) => e.name.slice('__em_js__'.length)),
  )
  // A GOT entry for one of the module's own symbols is filled from its own
  // exports when it is loaded.
  const own = new Set(WebAssembly.Module.exports(side).map((e) => e.name))
  const missing = []
  for (const imp of WebAssembly.Module.imports(side)) {
    if (imp.module !== 'env' && !imp.module.startsWith('GOT.')) continue
    const name = imp.name
    if (LOADER_PROVIDED.has(name) || emJs.has(name) || name.startsWith('invoke_')) continue
    if (imp.module.startsWith('GOT.') && own.has(name)) continue
    if (!exported.has(name)) missing.push(`${imp.module}.${name} (${imp.kind})`)
  }
  return missing
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [sidePath, mainPath] = process.argv.slice(2)
  if (!sidePath || !mainPath) {
    console.error('usage: node wasm/check-symbols.mjs SIDE_MODULE.so PGLITE.wasm')
    process.exit(2)
  }
  const missing = missingSymbols(readFileSync(sidePath), readFileSync(mainPath))
  if (missing.length > 0) {
    console.error(
      `check-symbols: ${sidePath} imports ${missing.length} symbol(s) that ${mainPath} does not export:`,
    )
    for (const m of missing) console.error(`  ${m}`)
    console.error(
      'PGlite would load this module and hang when one of them is called. Use another function, or implement it in the extension.',
    )
    process.exit(1)
  }
  console.log(`check-symbols: ${sidePath}: every import is exported by pglite.wasm`)
}
