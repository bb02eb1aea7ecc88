/** pglite-infer/server: the model server (docs/remote-models.md). Node only. */
export {
  startModelServer,
  serveUntilSignal,
  CALLABLE_FUNCTIONS,
  type ModelServer,
  type ModelServerOptions,
  type ServedModel,
  type ServerStats,
} from './server.js'
export { serveCommand, servedModel, SERVE_USAGE } from './cli.js'
