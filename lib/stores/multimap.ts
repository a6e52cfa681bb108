// A Map of Sets, as the in-process indexes of the memory and SQLite stores keep them (PostgreSQL
// groups a lease's rows by customer with it too): a key with no values left is removed, so the maps
// hold only what is live.

export function setAdd<K, V> (map: Map<K, Set<V>>, key: K, value: V): void {
  let set = map.get(key)
  if (set === undefined) map.set(key, set = new Set())
  set.add(value)
}

export function setDelete<K, V> (map: Map<K, Set<V>>, key: K, value: V): void {
  const set = map.get(key)
  if (set === undefined) return
  set.delete(value)
  if (set.size === 0) map.delete(key)
}
