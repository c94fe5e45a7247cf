import StateGraph

/// The shared objects (files, devices, pipes, sockets) an observation holds, in the order of
/// their nodes after every process's part: each object's key, its node with what it was made
/// from, and how many descriptors (or maps) of the parts refer to it.
///
/// A full refresh of a busy machine places thousands of objects and counts ten thousand
/// references; one table (key → place) with a multiplicative hash does it with a probe or two
/// each, where a dictionary per question (references, place, node) hashed every key three times
/// with SipHash.
struct SharedObjects {
    private(set) var keys: [ObjectKey] = []
    private(set) var kept: [ProcCache.KeptObject] = []
    private var references: [Int32] = []
    private var index = ObjectIndex()

    var count: Int { keys.count }

    mutating func reserve(_ n: Int) {
        keys.reserveCapacity(n)
        kept.reserveCapacity(n)
        references.reserveCapacity(n)
        index.reserve(n)
    }

    /// The place of `key`'s object, if held.
    func place(of key: ObjectKey) -> Int? { index.find(key) }

    /// One more reference to `key`: true when the object was not held (`make` gives its node,
    /// placed after the others).
    @discardableResult
    mutating func hold(_ key: ObjectKey, make: () -> ProcCache.KeptObject) -> Bool {
        if let place = index.find(key) {
            references[place] += 1
            return false
        }
        index.insert(key, place: keys.count)
        keys.append(key)
        kept.append(make())
        references.append(1)
        return true
    }

    /// One reference fewer to `key`: the place its object left (the last object moved there),
    /// or nil while it is still referred to.
    mutating func release(_ key: ObjectKey) -> Int? {
        guard let place = index.find(key) else { return nil }
        references[place] -= 1
        guard references[place] == 0 else { return nil }
        index.remove(key)
        let last = keys.count - 1
        if place != last {
            keys.swapAt(place, last)
            kept.swapAt(place, last)
            references.swapAt(place, last)
            index.update(keys[place], place: place)
        }
        keys.removeLast()
        kept.removeLast()
        references.removeLast()
        return place
    }

    /// Replace the node at `place` (a socket whose table entry changed).
    mutating func replace(at place: Int, with object: ProcCache.KeptObject) { kept[place] = object }

    /// How many references `key`'s object has (0: not held).
    func referenceCount(_ key: ObjectKey) -> Int { index.find(key).map { Int(references[$0]) } ?? 0 }
}

/// An open-addressing table from object key to place (linear probing, deletion by backward
/// shift, so no tombstones build up over a long run of patches).
struct ObjectIndex {
    private var keys: [ObjectKey] = []
    private var places: [Int32] = []
    private var mask = -1
    private(set) var count = 0

    mutating func reserve(_ n: Int) {
        if (n + 1) * 4 > keys.count * 3 { grow(to: n) }
    }

    func find(_ key: ObjectKey) -> Int? {
        guard count > 0 else { return nil }
        var i = bucket(key)
        while places[i] >= 0 {
            if keys[i] == key { return Int(places[i]) }
            i = (i + 1) & mask
        }
        return nil
    }

    /// Add `key`, which must not be present.
    mutating func insert(_ key: ObjectKey, place: Int) {
        if (count + 1) * 4 > keys.count * 3 { grow(to: count + 1) }
        var i = bucket(key)
        while places[i] >= 0 { i = (i + 1) & mask }
        keys[i] = key
        places[i] = Int32(place)
        count += 1
    }

    /// Change the place of `key`, which must be present.
    mutating func update(_ key: ObjectKey, place: Int) {
        var i = bucket(key)
        while keys[i] != key || places[i] < 0 { i = (i + 1) & mask }
        places[i] = Int32(place)
    }

    mutating func remove(_ key: ObjectKey) {
        guard count > 0 else { return }
        var i = bucket(key)
        while places[i] >= 0 && keys[i] != key { i = (i + 1) & mask }
        guard places[i] >= 0 else { return }
        count -= 1
        // Move back each following entry that could have sat in the freed bucket.
        var hole = i
        var j = (i + 1) & mask
        while places[j] >= 0 {
            let home = bucket(keys[j])
            // Whether `home` lies cyclically in (hole, j]: then the entry stays.
            let stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j)
            if !stays {
                keys[hole] = keys[j]
                places[hole] = places[j]
                hole = j
            }
            j = (j + 1) & mask
        }
        places[hole] = -1
    }

    private func bucket(_ key: ObjectKey) -> Int {
        Int(truncatingIfNeeded: mixed(key.a ^ mixed(key.b &+ UInt64(key.kind.rawValue) << 59))) & mask
    }

    private mutating func grow(to n: Int) {
        var capacity = 16
        while capacity * 3 < (n + 1) * 4 { capacity *= 2 }
        let (oldKeys, oldPlaces) = (keys, places)
        keys = Array(repeating: ObjectKey(kind: .socket, a: 0), count: capacity)
        places = Array(repeating: -1, count: capacity)
        mask = capacity - 1
        count = 0
        for (key, place) in zip(oldKeys, oldPlaces) where place >= 0 { insert(key, place: Int(place)) }
    }
}

/// A 64-bit value's bits spread over all of them (splitmix64's finalizer): cheap, and close
/// values land far apart.
func mixed(_ x: UInt64) -> UInt64 {
    var h = x &+ 0x9E37_79B9_7F4A_7C15
    h = (h ^ (h >> 30)) &* 0xBF58_476D_1CE4_E5B9
    h = (h ^ (h >> 27)) &* 0x94D0_49BB_1331_11EB
    return h ^ (h >> 31)
}
