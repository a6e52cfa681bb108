// Counts a corpus's words as it streams past, so a 100 MB corpus is never split in memory whole.
import { StringDecoder } from 'node:string_decoder'
import { Transform, type TransformCallback } from 'node:stream'

/** Distinct words are tracked up to this many; the built-in model has no vocabulary, so all count as out of vocabulary. */
export const MAX_DISTINCT_WORDS = 100_000
/** A "word" longer than this (a file with no whitespace) is counted by its first characters only. */
const MAX_WORD_CHARS = 1024

export class WordCounter extends Transform {
  total = 0
  readonly distinct = new Set<string>()
  readonly #decoder = new StringDecoder('utf8')
  #partial = ''

  override _transform (chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#count(this.#decoder.write(chunk), false)
    done(null, chunk)
  }

  override _flush (done: TransformCallback): void {
    this.#count(this.#decoder.end(), true)
    done()
  }

  #count (text: string, last: boolean): void {
    const words = (this.#partial + text).toLowerCase().split(/\s+/)
    // The last piece may continue in the next chunk.
    this.#partial = last ? '' : (words.pop() as string).slice(0, MAX_WORD_CHARS)
    for (const word of words) {
      if (word.length === 0) continue
      this.total++
      if (this.distinct.size < MAX_DISTINCT_WORDS) this.distinct.add(word)
    }
  }
}
