// Counts a stored corpus's words as it streams by, so a 100 MB corpus is never one string in memory.
import type { StoredBytes } from './storage/blobs.js'

export async function countCorpusWords (corpus: StoredBytes): Promise<{ total: number, distinct: number }> {
  const distinct = new Set<string>()
  let total = 0
  let carry = '' // a word cut by the chunk boundary
  const stream = corpus.stream()
  stream.setEncoding('utf8') // keeps a multi-byte character cut by a boundary whole
  for await (const text of stream as AsyncIterable<string>) {
    const words = (carry + text).split(/\s+/)
    carry = words.pop() ?? ''
    for (const w of words) {
      if (w.length === 0) continue
      total++
      distinct.add(w.toLowerCase())
    }
  }
  if (carry.length > 0) {
    total++
    distinct.add(carry.toLowerCase())
  }
  return { total, distinct: distinct.size }
}
