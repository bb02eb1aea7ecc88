/** Worker side of WorkerPoolEngine: runs computeTopK on a feature range. */
import { parentPort } from 'node:worker_threads'
import { computeTopK } from './topk.js'

interface Job {
  id: number
  embed: Float32Array
  vocab: number
  hidden: number
  down: Float32Array
  start: number
  end: number
  k: number
  ids: Uint32Array
  logits: Float32Array
}

parentPort!.on('message', (job: Job) => {
  try {
    // Results land in the shared output arrays at the job's own offset.
    const off = job.start * job.k
    const len = (job.end - job.start) * job.k
    computeTopK({
      ...job,
      outIds: job.ids.subarray(off, off + len),
      outLogits: job.logits.subarray(off, off + len),
    })
    parentPort!.postMessage({ id: job.id })
  } catch (e) {
    parentPort!.postMessage({ id: job.id, error: (e as Error).message })
  }
})
