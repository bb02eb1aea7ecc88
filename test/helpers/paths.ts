import { fileURLToPath } from 'node:url'

/** Absolute path of a file in the repository, from its repository-relative path. */
export function repoPath(relative: string): string {
  return fileURLToPath(new URL(`../../${relative}`, import.meta.url))
}

export const FIXTURE_MODELS = repoPath('test/fixtures/models')
export const QWEN_FIXTURE = `${FIXTURE_MODELS}/knowledge-qwen2-6l`
export const STORIES_FIXTURE = `${FIXTURE_MODELS}/stories260K`
