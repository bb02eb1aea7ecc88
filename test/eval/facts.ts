/** The fixture's fact table, shared by the facts evaluations. */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface Fact {
  subject: string
  relation: string
  object: string
}

export const FIXTURE = fileURLToPath(
  new URL('../fixtures/models/knowledge-qwen2-6l', import.meta.url),
)

export const facts: Fact[] = readFileSync(join(FIXTURE, 'facts.jsonl'), 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l) as Fact)

/** A wrong object of the same relation: the next fact's object that differs (deterministic). */
export function wrongObject(i: number): string {
  const f = facts[i]!
  for (let j = 1; j < facts.length; j++) {
    const g = facts[(i + j) % facts.length]!
    if (g.relation === f.relation && g.object.toLowerCase() !== f.object.toLowerCase())
      return g.object
  }
  throw new Error(`no other object for ${f.relation}`)
}
