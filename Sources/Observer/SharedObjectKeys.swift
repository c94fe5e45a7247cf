import Glibc
import StateGraph

/// A reference to a shared object: its key, its node's id (made once, where the reference is
/// found), and the path or link text the referring descriptor or map shows for it.
struct ObjectReference {
    var key: ObjectKey
    var id: NodeID
    var target: String

    init(_ key: ObjectKey, target: String) {
        self.init(key: key, id: key.id, target: target)
    }

    init(key: ObjectKey, id: NodeID, target: String) {
        self.key = key
        self.id = id
        self.target = target
    }
}

/// Which sockets are held, as a digest that does not depend on their order: how many, and the
/// sum of each inode's bits mixed (a socket held twice counts twice). Two different holdings
/// give the same digest with odds of about 2^-64; a full rescan reads every table regardless.
struct SocketDigest: Equatable {
    private(set) var count = 0
    private var sum: UInt64 = 0

    mutating func add(_ inode: UInt64) {
        count += 1
        sum &+= mixed(inode)
    }

    mutating func add(_ other: SocketDigest) {
        count += other.count
        sum &+= other.sum
    }
}

/// What a descriptor refers to.
enum ObjectRef {
    /// A file, device, pipe or socket: one node per refresh, named by its identity, with the
    /// path (or link text) the first descriptor seen shows for it.
    case shared(ObjectReference)
    /// An anonymous inode (eventfd, timerfd, …): a node of its own under the descriptor.
    case own(Node)
}

/// A shared object's identity, cheap to hash.
struct ObjectKey: Hashable {
    enum Kind: UInt8 { case socket, pipe, fifo, regular, directory, charDevice, blockDevice }
    /// socket, pipe: a is the inode. fifo, regular, directory: device and inode. Devices: major, minor.
    var kind: Kind
    var a: UInt64
    var b: UInt64 = 0

    /// The object's node id: what it is, not which descriptor shows it.
    var id: NodeID {
        switch self.kind {
        case .socket: .object("socket:", a)
        case .pipe: .object("pipe:", a)
        case .fifo: .object("pipe:", a, b)
        case .regular, .directory: .object("file:", a, b)
        case .charDevice: .object("device:c:", a, b)
        case .blockDevice: .object("device:b:", a, b)
        }
    }

    /// The object's node (`id` is this key's); a socket's carries its table entry when one was found.
    func node(id: NodeID, target: String, socket: SocketEntry? = nil) -> Node {
        let ino = AttributeValue.int(Int64(bitPattern: kind == .socket || kind == .pipe ? a : b))
        switch kind {
        case .socket:
            guard let s = socket else {
                return Node(id: id, kind: .socket, observability: .background, attributes: ["ino": ino, "protocol": .string("other")])
            }
            return Node(id: id, kind: .socket, observability: .background,
                        attributes: ["ino": ino, "protocol": .string(s.protocolName), "local": .string(s.local),
                                     "remote": .string(s.remote), "state": .string(s.state)])
        case .pipe, .fifo:
            return Node(id: id, kind: .pipe, observability: .background, attributes: ["name": .string(target), "ino": ino])
        case .regular, .directory:
            return Node(id: id, kind: .file, observability: .background,
                        attributes: ["path": .string(target), "type": .string(kind == .regular ? "regular" : "directory"),
                                     "dev": .int(Int64(bitPattern: a)), "ino": ino])
        case .charDevice, .blockDevice:
            let type = kind == .charDevice ? "char-device" : "block-device"
            return Node(id: id, kind: .file, observability: .background,
                        attributes: ["path": .string(target), "type": .string(type), "major": .int(Int64(a)), "minor": .int(Int64(b))])
        }
    }
}
