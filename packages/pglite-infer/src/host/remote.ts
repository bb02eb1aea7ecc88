import type { SyncFiles } from './sources.js'
import { HostError } from './types.js'

export interface RemoteOptions {
  /** infer.auto_download: may hf:// sources be downloaded and extracted? */
  autoDownload: boolean
}

/**
 * The files of a remote model source, fetched synchronously (host hooks run
 * inside a SQL call and cannot await):
 *   - http(s)://host/path/x.vindex : a vindex served over HTTP
 *   - hf://org/model[@revision]    : a HuggingFace checkpoint, extracted to a vindex
 */
export function fetchRemoteSync(source: string, options: RemoteOptions): SyncFiles {
  throw new HostError(`remote sources are not supported yet: ${source}`, '0A000')
}
