// The watchdog's thread (see watchdog.ts): waits for the main thread's
// heartbeat to stop, then prints the main thread's stack and kills the process.
import { Session } from 'node:inspector'
import { writeSync } from 'node:fs'
import { workerData } from 'node:worker_threads'

const { beat, limitS } = workerData
const say = (s) => writeSync(2, `\n[test watchdog] ${s}\n`)

function frames(callFrames) {
  return callFrames
    .slice(0, 40)
    .map((f) => `    at ${f.functionName || '(anonymous)'} ${f.url}:${f.location.lineNumber + 1}`)
    .join('\n')
}

function stackThenKill(stalledS) {
  say(
    `the main thread has not run for ${stalledS} s (a synchronous loop, e.g. inside WASM); its stack:`,
  )
  const session = new Session()
  let done = false
  const finish = (text) => {
    if (done) return
    done = true
    say(text)
    process.kill(process.pid, 'SIGKILL')
  }
  try {
    session.connectToMainThread()
    session.on('Debugger.paused', (m) => finish(frames(m.params.callFrames)))
    session.post('Debugger.enable', () => session.post('Debugger.pause'))
  } catch (e) {
    finish(`(no stack: ${e?.message ?? e})`)
  }
  // the pause may never be taken (e.g. a loop without interrupt checks)
  setTimeout(() => finish('(no stack: the main thread did not pause within 10 s)'), 10_000)
}

const timer = setInterval(() => {
  const stalledS = Math.round((Date.now() - beat[0]) / 1000)
  if (stalledS >= limitS) {
    clearInterval(timer)
    stackThenKill(stalledS)
  }
}, 1000)
