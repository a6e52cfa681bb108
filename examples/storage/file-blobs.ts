// Bodies as files under DATA_DIR/files: for a single server, whose erasers reach its own disk.
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { once } from 'node:events'
import { mkdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { BodyTooLarge, type BlobStore, type StoredBytes } from './blobs.js'

/** Files under DATA_DIR/files/<instance>/<kind>/<sha256 of id>, so any id is a safe file name. */
export class FileStore implements BlobStore {
  readonly root: string
  constructor (dataDir: string) { this.root = join(dataDir, 'files') }

  path (instance: string, kind: string, id: string): string {
    const name = createHash('sha256').update(id).digest('hex')
    return join(this.root, createHash('sha256').update(instance).digest('hex').slice(0, 32), kind, name)
  }

  async write (instance: string, kind: string, id: string, source: AsyncIterable<Buffer>, limit: number): Promise<number> {
    const file = this.path(instance, kind, id)
    await mkdir(join(file, '..'), { recursive: true })
    let bytes = 0
    const counter = new Transform({
      transform (chunk: Buffer, _enc, done) {
        bytes += chunk.length
        if (bytes > limit) done(new BodyTooLarge(limit))
        else done(null, chunk)
      }
    })
    const sink = createWriteStream(file)
    try {
      await pipeline(source instanceof Readable ? source : Readable.from(source), counter, sink)
    } catch (err) {
      // A body refused in its first chunk can fail the pipeline before the file's open() has
      // finished; removing it then would let the open create it afterwards, so wait for the close.
      if (!sink.closed) await once(sink, 'close').catch(() => {})
      await rm(file, { force: true })
      throw err
    }
    return bytes
  }

  async open (instance: string, kind: string, id: string): Promise<StoredBytes | null> {
    const file = this.path(instance, kind, id)
    let size: number
    try {
      size = (await stat(file)).size
    } catch {
      return null
    }
    return {
      size,
      stream: (start = 0, end = size) => end <= start ? Readable.from([]) : createReadStream(file, { start, end: end - 1 })
    }
  }

  async remove (instance: string, kind: string, ids: readonly string[]): Promise<void> {
    for (const id of ids) await rm(this.path(instance, kind, id), { force: true })
  }
}
